import { describe, expect, it } from "vitest";
import { EndpointLimiter, type LimiterOptions } from "./endpoint-limiter.ts";

interface Job {
  endpoint: string;
  n: number;
}

/** A limiter whose jobs finish only when the test says so, on a clock the test moves. */
function harness(options: Partial<LimiterOptions> = {}) {
  let now = 0;
  const started: Job[] = [];
  const finishers = new Map<Job, () => void>();
  const limiter = new EndpointLimiter<Job>(
    { maxInFlight: 4, perEndpoint: 2, maxQueuedPerEndpoint: 100, maxQueueWaitMs: 1_000, ...options },
    (job) =>
      new Promise<void>((resolve) => {
        started.push(job);
        finishers.set(job, resolve);
      }),
    () => now,
  );
  return {
    limiter,
    started,
    advance(ms: number) {
      now += ms;
    },
    async finish(job: Job) {
      finishers.get(job)!();
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

describe("EndpointLimiter", () => {
  it("runs at most perEndpoint jobs of one endpoint at a time", () => {
    const { limiter, started } = harness();
    for (let n = 0; n < 5; n++) limiter.submit("a", { endpoint: "a", n });
    expect(started.map((job) => job.n)).toEqual([0, 1]);
    expect(limiter.queued).toBe(3);
  });

  it("shares maxInFlight round-robin, so a busy endpoint does not starve a quiet one", async () => {
    const { limiter, started, finish } = harness({ maxInFlight: 2, perEndpoint: 2 });
    for (let n = 0; n < 4; n++) limiter.submit("busy", { endpoint: "busy", n });
    limiter.submit("quiet", { endpoint: "quiet", n: 100 });
    expect(started.map((job) => job.n)).toEqual([0, 1]);
    await finish(started[0]!);
    expect(started.at(-1)).toEqual({ endpoint: "quiet", n: 100 });
  });

  it("refuses work that would wait longer than maxQueueWaitMs behind a slow endpoint", () => {
    const { limiter, advance } = harness({ perEndpoint: 1 });
    expect(limiter.submit("slow", { endpoint: "slow", n: 0 })).toEqual({ admitted: true });
    expect(limiter.submit("slow", { endpoint: "slow", n: 1 })).toEqual({ admitted: true }); // no latency known yet
    advance(600); // the request in flight has been hanging for 600 ms
    const admission = limiter.submit("slow", { endpoint: "slow", n: 2 });
    expect(admission).toEqual({ admitted: false, retryAfterMs: 1_200 });
    expect(limiter.submit("fast", { endpoint: "fast", n: 3 })).toEqual({ admitted: true });
  });

  it("evicts queued work once its endpoint turns slow", () => {
    const { limiter, advance } = harness({ perEndpoint: 1 });
    for (let n = 0; n < 4; n++) limiter.submit("slow", { endpoint: "slow", n });
    expect(limiter.queued).toBe(3);
    advance(400); // queue positions 1..3 now expect 400, 800, 1200 ms
    const evicted = limiter.evictOverdue();
    expect(evicted.map((e) => e.job.n)).toEqual([3]);
    expect(limiter.queued).toBe(2);
  });

  it("enforces the hard queue cap", () => {
    const { limiter } = harness({ perEndpoint: 1, maxQueuedPerEndpoint: 2 });
    for (let n = 0; n < 3; n++) limiter.submit("a", { endpoint: "a", n });
    expect(limiter.submit("a", { endpoint: "a", n: 3 }).admitted).toBe(false);
  });

  it("hands back queued work and reports idleness", async () => {
    const { limiter, started, finish } = harness({ perEndpoint: 1 });
    for (let n = 0; n < 3; n++) limiter.submit("a", { endpoint: "a", n });
    expect(limiter.drainQueued().map((job) => job.n)).toEqual([1, 2]);
    const idle = limiter.whenIdle();
    await finish(started[0]!);
    await idle;
    expect(limiter.inFlight).toBe(0);
    expect(started).toHaveLength(1);
  });
});
