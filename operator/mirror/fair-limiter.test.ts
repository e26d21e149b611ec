import { describe, expect, it } from "vitest";
import { FairLimiter } from "./fair-limiter.ts";
import { TokenBucket } from "./rate-limiter.ts";

describe("FairLimiter", () => {
  it("serves namespaces in turn: a busy one cannot starve a quiet one", async () => {
    const limiter = new FairLimiter(new TokenBucket({ qps: 200, burst: 1 }));
    const order: string[] = [];
    const busy = Array.from({ length: 20 }, (_, i) =>
      limiter.take("busy").then(() => order.push(`busy-${i}`)),
    );
    const quiet = limiter.take("quiet").then(() => order.push("quiet"));
    await Promise.all([...busy, quiet]);
    expect(order.indexOf("quiet")).toBeLessThanOrEqual(2);
    // within a namespace, first come first served
    const busyOrder = order.filter((entry) => entry.startsWith("busy"));
    expect(busyOrder).toEqual(Array.from({ length: 20 }, (_, i) => `busy-${i}`));
  });

  it("keeps to the bucket's rate overall", async () => {
    const limiter = new FairLimiter(new TokenBucket({ qps: 100, burst: 1 }));
    const started = performance.now();
    await Promise.all(["a", "b", "c", "a", "b", "c"].map((namespace) => limiter.take(namespace)));
    // 1 at once, then 5 more at 100/s
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
  });

  it("forgets a waiter whose caller gave up", async () => {
    const limiter = new FairLimiter(new TokenBucket({ qps: 5, burst: 1 }));
    await limiter.take("a"); // the burst
    const stop = new AbortController();
    const given = limiter.take("a", stop.signal);
    stop.abort();
    await expect(given).rejects.toBeDefined();
    expect(limiter.waitingNamespaces).toBe(0);
  });
});
