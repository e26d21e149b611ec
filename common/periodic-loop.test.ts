import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { PeriodicLoop } from "./periodic-loop.ts";

describe("PeriodicLoop", () => {
  it("ticks at once when immediate, goes on after a failing tick, and stops promptly", async () => {
    const ticks: number[] = [];
    const errors: unknown[] = [];
    const loop = new PeriodicLoop({
      intervalMs: 10,
      immediate: true,
      tick: async () => {
        ticks.push(ticks.length);
        if (ticks.length === 2) throw new Error("redis down");
      },
      onError: (error) => {
        errors.push(error);
      },
    });
    loop.start();
    await sleep(0);
    expect(ticks).toEqual([0]);
    while (ticks.length < 4) await sleep(5);
    expect(errors).toHaveLength(1);
    await loop.stop();
    const after = ticks.length;
    await sleep(30);
    expect(ticks.length).toBe(after);
    expect(loop.stopped).toBe(true);
  });

  it("waits one interval first unless immediate, and a stop ends that wait", async () => {
    let ticks = 0;
    const loop = new PeriodicLoop({
      intervalMs: 60_000,
      immediate: false,
      tick: async () => {
        ticks++;
      },
      onError: () => {},
    });
    loop.start();
    await sleep(20);
    const started = performance.now();
    await loop.stop();
    expect(ticks).toBe(0);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
