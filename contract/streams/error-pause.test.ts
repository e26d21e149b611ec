import { describe, expect, it } from "vitest";
import { ErrorPause, STEADY_PAUSE } from "./error-pause.ts";

describe("ErrorPause", () => {
  it("doubles the wait per consecutive failure up to the maximum, and resets on success", async () => {
    const pause = new ErrorPause({ initialMs: 1, maxMs: 4 });
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      delays.push(pause.nextDelayMs());
      await pause.failed();
    }
    expect(delays).toEqual([1, 2, 4, 4, 4]);
    expect(pause.failures).toBe(5);
    pause.succeeded();
    expect(pause.nextDelayMs()).toBe(1);
  });

  it("keeps a steady pause by default", () => {
    expect(new ErrorPause().nextDelayMs()).toBe(STEADY_PAUSE.initialMs);
  });

  it("ends a wait at once when the loop stops", async () => {
    const pause = new ErrorPause({ initialMs: 60_000, maxMs: 60_000 });
    const stop = new AbortController();
    const started = performance.now();
    const waiting = pause.failed(stop.signal);
    stop.abort();
    await waiting;
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("refuses a policy that cannot back off", () => {
    expect(() => new ErrorPause({ initialMs: 0, maxMs: 10 })).toThrow();
    expect(() => new ErrorPause({ initialMs: 10, maxMs: 5 })).toThrow();
  });
});
