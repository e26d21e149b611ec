import { describe, expect, it } from "vitest";
import { TokenBucket } from "./rate-limiter.ts";

function fakeClock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe("TokenBucket", () => {
  it("allows a burst, then qps tokens per second", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 5, now: clock.now });
    const taken = Array.from({ length: 8 }, () => bucket.tryTake());
    expect(taken).toEqual([true, true, true, true, true, false, false, false]);
    expect(bucket.delayUntilToken()).toBeCloseTo(100);
    clock.advance(100);
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    clock.advance(250);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, false]);
  });

  it("never holds more than burst tokens after a quiet period", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ qps: 100, burst: 3, now: clock.now });
    clock.advance(60_000);
    expect(Array.from({ length: 5 }, () => bucket.tryTake())).toEqual([true, true, true, false, false]);
  });

  it("keeps any window of T seconds within burst + qps·T (real clock)", async () => {
    const bucket = new TokenBucket({ qps: 200, burst: 10 });
    const times: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 60 }, async () => {
        await bucket.take();
        times.push(performance.now() - started);
      }),
    );
    const elapsed = Math.max(...times);
    // 50 tokens beyond the burst at 200/s need ≥ 250 ms.
    expect(elapsed).toBeGreaterThanOrEqual(240);
    for (const start of times) {
      const inWindow = times.filter((t) => t >= start && t < start + 100).length;
      expect(inWindow).toBeLessThanOrEqual(10 + 200 * 0.1 + 1);
    }
  });

  it("serves waiters in order and lets an aborted waiter go without blocking the others", async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ qps: 1000, burst: 1, now: () => clock.now() });
    expect(bucket.tryTake()).toBe(true);
    const aborted = new AbortController();
    const order: string[] = [];
    const first = bucket.take(aborted.signal).then(
      () => order.push("first"),
      () => order.push("first aborted"),
    );
    const second = bucket.take().then(() => order.push("second"));
    aborted.abort();
    clock.advance(1);
    await Promise.all([first, second]);
    expect(order).toEqual(["first aborted", "second"]);
  });

  it("rejects nonsense settings", () => {
    expect(() => new TokenBucket({ qps: 0, burst: 1 })).toThrow(/qps/);
    expect(() => new TokenBucket({ qps: 1, burst: 0 })).toThrow(/burst/);
  });
});
