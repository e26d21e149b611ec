import { describe, expect, it } from "vitest";
import type { EndpointHealth } from "../../contract/endpoint-health.ts";
import type { WebhookStatus } from "../api/v1alpha1/index.ts";
import { decideHealth, ENDPOINT_UNHEALTHY, type HealthInputs, humanDuration } from "./webhook-health.ts";

const T0 = Date.parse("2026-11-30T10:00:00Z");
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const failing = (firstFailureAt: number, lastFailureAt: number): EndpointHealth => ({
  uid: "u",
  state: "CircuitOpen",
  consecutiveFailures: 40,
  failureRatio: 1,
  windowAttempts: 20,
  firstFailureAt,
  lastFailureAt,
  lastFailureReason: "HTTP 503",
  nextProbeAt: lastFailureAt + 600_000,
  updatedAt: lastFailureAt,
});

const autoPausedStatus = (generation: number, extra: Partial<WebhookStatus> = {}): WebhookStatus => ({
  observedGeneration: generation,
  conditions: [
    {
      type: "Ready",
      status: "False",
      reason: ENDPOINT_UNHEALTHY,
      message: "auto-paused",
      observedGeneration: generation,
      lastTransitionTime: new Date(T0 + 5 * DAY).toISOString(),
    },
  ],
  health: { state: "AutoPaused" },
  ...extra,
});

const inputs = (overrides: Partial<HealthInputs>): HealthInputs => ({
  record: undefined,
  autoPauseAfterMs: 5 * DAY,
  current: undefined,
  generation: 1,
  resumeToken: undefined,
  nowMs: T0 + 6 * DAY,
  ...overrides,
});

describe("decideHealth", () => {
  it("is Healthy without a record, and shows a record's state, counts, last failure and next probe", () => {
    expect(decideHealth(inputs({}))).toEqual({
      health: { state: "Healthy" },
      autoPaused: false,
      newlyAutoPaused: false,
    });
    const decision = decideHealth(inputs({ record: failing(T0, T0 + HOUR), nowMs: T0 + HOUR }));
    expect(decision.autoPaused).toBe(false);
    expect(decision.health).toEqual({
      state: "CircuitOpen",
      consecutiveFailures: 40,
      failureRatio: 1,
      failingSince: "2026-11-30T10:00:00.000Z",
      lastFailureTime: "2026-11-30T11:00:00.000Z",
      lastFailureReason: "HTTP 503",
      nextProbeTime: "2026-11-30T11:10:00.000Z",
    });
  });

  it("auto-pauses once failures span autoPause.after, by the evidence of a failure after it, not the clock", () => {
    const justShort = failing(T0, T0 + 5 * DAY - 1);
    expect(decideHealth(inputs({ record: justShort, nowMs: T0 + 30 * DAY })).autoPaused).toBe(false);
    const decision = decideHealth(inputs({ record: failing(T0, T0 + 5 * DAY) }));
    expect(decision).toMatchObject({ autoPaused: true, newlyAutoPaused: true, failingForMs: 5 * DAY });
    expect(decision.health.state).toBe("AutoPaused");
    expect(decision.health.nextProbeTime).toBeUndefined();
  });

  it("never auto-pauses with autoPause.after 0, or when the last attempt succeeded", () => {
    expect(decideHealth(inputs({ record: failing(T0, T0 + 9 * DAY), autoPauseAfterMs: 0 })).autoPaused).toBe(
      false,
    );
    const recovered: EndpointHealth = {
      ...failing(T0, T0 + 9 * DAY),
      consecutiveFailures: 0,
      state: "Degraded",
    };
    delete recovered.firstFailureAt;
    expect(decideHealth(inputs({ record: recovered })).autoPaused).toBe(false);
  });

  it("stays auto-paused for the same generation, whatever the record says, until a resume", () => {
    const healthy: EndpointHealth = { ...failing(T0, T0), state: "Healthy", consecutiveFailures: 0 };
    delete healthy.firstFailureAt;
    const decision = decideHealth(inputs({ record: healthy, current: autoPausedStatus(1) }));
    expect(decision).toMatchObject({ autoPaused: true, newlyAutoPaused: false });
    expect(decision.resumed).toBeUndefined();
  });

  it("resumes on a new annotation token, records it, and counts failures only from then on", () => {
    const record = failing(T0, T0 + 5 * DAY);
    const now = T0 + 6 * DAY;
    const resumed = decideHealth(
      inputs({ record, current: autoPausedStatus(1), resumeToken: "ticket-1", nowMs: now }),
    );
    expect(resumed).toMatchObject({ autoPaused: false, resumed: "annotation", lastResumeToken: "ticket-1" });
    expect(resumed.health.resumedAt).toBe(new Date(now).toISOString());

    // after the write: the token is handled, the run before the resume does not count
    const written: WebhookStatus = {
      ...autoPausedStatus(1),
      conditions: [],
      health: resumed.health,
      lastResumeToken: "ticket-1",
    };
    const later = failing(T0, now + 4 * DAY);
    expect(
      decideHealth(inputs({ record: later, current: written, resumeToken: "ticket-1" })).autoPaused,
    ).toBe(false);
    const muchLater = failing(T0, now + 5 * DAY);
    expect(
      decideHealth(inputs({ record: muchLater, current: written, resumeToken: "ticket-1" })),
    ).toMatchObject({ autoPaused: true, newlyAutoPaused: true, failingForMs: 5 * DAY });
  });

  it("treats a handled token as no request, and records a new token on a webhook that is not paused", () => {
    const handled = decideHealth(
      inputs({ current: autoPausedStatus(1, { lastResumeToken: "t" }), resumeToken: "t" }),
    );
    expect(handled.autoPaused).toBe(true);
    const idle = decideHealth(inputs({ current: { conditions: [] }, resumeToken: "t2" }));
    expect(idle).toMatchObject({ autoPaused: false, lastResumeToken: "t2" });
    expect(idle.resumed).toBeUndefined();
  });

  it("resumes on a spec change (a new generation)", () => {
    const decision = decideHealth(
      inputs({ record: failing(T0, T0 + 5 * DAY), current: autoPausedStatus(1), generation: 2 }),
    );
    expect(decision).toMatchObject({ autoPaused: false, resumed: "spec" });
  });
});

describe("humanDuration", () => {
  it("reads as days and hours, hours and minutes, minutes or seconds", () => {
    expect(humanDuration(5 * DAY + 2 * HOUR)).toBe("5d 2h");
    expect(humanDuration(3 * HOUR + 600_000)).toBe("3h 10m");
    expect(humanDuration(45_000)).toBe("45s");
    expect(humanDuration(120_000)).toBe("2m");
  });
});
