import { describe, expect, it } from "vitest";
import { CircuitBreakers, type CircuitEvent } from "./circuit-breaker.ts";

const SETTINGS = { consecutiveFailures: 3, cooldownMs: 1_000, maxCooldownMs: 3_000 };

function breakers() {
  let now = 0;
  const events: CircuitEvent[] = [];
  const circuits = new CircuitBreakers({ now: () => now, onChange: (event) => events.push(event) });
  return {
    circuits,
    events,
    advance(ms: number) {
      now += ms;
    },
  };
}

describe("circuit breakers", () => {
  it("open after the configured failures in a row, and only then", () => {
    const { circuits } = breakers();
    circuits.record("ns/a", true, SETTINGS);
    circuits.record("ns/a", true, SETTINGS);
    circuits.record("ns/a", false, SETTINGS); // a success resets the count
    circuits.record("ns/a", true, SETTINGS);
    circuits.record("ns/a", true, SETTINGS);
    expect(circuits.admit("ns/a", SETTINGS)).toEqual({ admitted: true });
    circuits.record("ns/a", true, SETTINGS);
    expect(circuits.state("ns/a")).toBe("open");
    expect(circuits.admit("ns/a", SETTINGS)).toEqual({ admitted: false, retryAfterMs: 1_000 });
    // another webhook is not affected
    expect(circuits.admit("ns/b", SETTINGS)).toEqual({ admitted: true });
  });

  it("let one probe through after the cooldown; a success closes the circuit", () => {
    const { circuits, events, advance } = breakers();
    for (let i = 0; i < 3; i++) circuits.record("ns/a", true, SETTINGS);
    advance(600);
    expect(circuits.admit("ns/a", SETTINGS)).toEqual({ admitted: false, retryAfterMs: 400 });
    advance(400);
    expect(circuits.admit("ns/a", SETTINGS)).toEqual({ admitted: true });
    expect(circuits.state("ns/a")).toBe("half-open");
    expect(circuits.admit("ns/a", SETTINGS).admitted).toBe(false); // one probe at a time
    circuits.record("ns/a", false, SETTINGS);
    expect(circuits.state("ns/a")).toBe("closed");
    expect(circuits.admit("ns/a", SETTINGS)).toEqual({ admitted: true });
    expect(events.map((event) => event.state)).toEqual(["open", "half-open", "closed"]);
  });

  it("double the cooldown after each failed probe, up to the maximum", () => {
    const { circuits, events, advance } = breakers();
    for (let i = 0; i < 3; i++) circuits.record("ns/a", true, SETTINGS);
    for (const expected of [2_000, 3_000, 3_000]) {
      const cooldown = (events.at(-1) as CircuitEvent).cooldownMs as number;
      advance(cooldown);
      expect(circuits.admit("ns/a", SETTINGS)).toEqual({ admitted: true });
      circuits.record("ns/a", true, SETTINGS);
      expect(events.at(-1)).toEqual({ key: "ns/a", state: "open", cooldownMs: expected });
    }
  });

  it("free the probe slot of a probe that was not made", () => {
    const { circuits, advance } = breakers();
    for (let i = 0; i < 3; i++) circuits.record("ns/a", true, SETTINGS);
    advance(1_000);
    expect(circuits.admit("ns/a", SETTINGS).admitted).toBe(true);
    circuits.abandon("ns/a");
    expect(circuits.admit("ns/a", SETTINGS).admitted).toBe(true);
  });

  it("are off with consecutiveFailures 0", () => {
    const { circuits } = breakers();
    const off = { ...SETTINGS, consecutiveFailures: 0 };
    for (let i = 0; i < 10; i++) circuits.record("ns/a", true, off);
    expect(circuits.admit("ns/a", off)).toEqual({ admitted: true });
    expect(circuits.unhealthy).toBe(0);
  });
});
