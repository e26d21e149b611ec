import { setTimeout as sleep } from "node:timers/promises";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { WorkQueue } from "./workqueue.ts";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function metricValue(registry: Registry, name: string): Promise<number | undefined> {
  const metric = await registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => v.labels.name === "test")?.value;
}

describe("WorkQueue", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("hands keys out in order and deduplicates keys that are still waiting", async () => {
    const queue = new WorkQueue({ name: "test" });
    queue.add("ns/a");
    queue.add("ns/b");
    queue.add("ns/a");
    expect(queue.length).toBe(2);
    expect(await queue.get()).toBe("ns/a");
    expect(await queue.get()).toBe("ns/b");
    expect(queue.length).toBe(0);
  });

  it("queues a key re-added while it is processed only after it is done", async () => {
    const queue = new WorkQueue({ name: "test" });
    queue.add("ns/a");
    const key = await queue.get();
    queue.add("ns/a");
    queue.add("ns/a");
    expect(queue.length).toBe(0);
    queue.done(key!);
    expect(queue.length).toBe(1);
    expect(await queue.get()).toBe("ns/a");
    queue.done("ns/a");
    expect(queue.length).toBe(0);
  });

  it("never runs one key on two workers at once", async () => {
    const queue = new WorkQueue({ name: "test" });
    const active = new Map<string, number>();
    let maxSameKey = 0;
    let calls = 0;
    const running = queue.run(async (key) => {
      const n = (active.get(key) ?? 0) + 1;
      active.set(key, n);
      maxSameKey = Math.max(maxSameKey, n);
      calls++;
      await sleep(5);
      active.set(key, n - 1);
    }, 8);
    for (let i = 0; i < 20; i++) {
      queue.add("ns/hot");
      queue.add(`ns/cold-${i % 4}`);
      await sleep(1);
    }
    await sleep(30);
    await queue.shutdown();
    await running;
    expect(maxSameKey).toBe(1);
    // Adds during processing collapse into one follow-up run, not one run per add.
    expect(calls).toBeGreaterThan(4);
    expect(calls).toBeLessThan(40);
  });

  it("processes different keys concurrently up to the worker count", async () => {
    const queue = new WorkQueue({ name: "test" });
    let active = 0;
    let peak = 0;
    const running = queue.run(async () => {
      active++;
      peak = Math.max(peak, active);
      await sleep(10);
      active--;
    }, 3);
    for (let i = 0; i < 9; i++) queue.add(`ns/${i}`);
    await sleep(50);
    await queue.shutdown();
    await running;
    expect(peak).toBe(3);
  });

  it("backs off per key exponentially until forget, capped at the maximum", () => {
    vi.useFakeTimers();
    const queue = new WorkQueue({ name: "test", backoff: { baseDelayMs: 5, maxDelayMs: 1_000_000 } });
    const schedule = vi.spyOn(queue, "addAfter");
    for (let i = 0; i < 4; i++) queue.addRateLimited("ns/a");
    queue.addRateLimited("ns/b");
    expect(schedule.mock.calls.map(([key, delay]) => [key, delay])).toEqual([
      ["ns/a", 5],
      ["ns/a", 10],
      ["ns/a", 20],
      ["ns/a", 40],
      ["ns/b", 5],
    ]);
    expect(queue.numRequeues("ns/a")).toBe(4);
    queue.forget("ns/a");
    expect(queue.numRequeues("ns/a")).toBe(0);
    schedule.mockClear();
    queue.addRateLimited("ns/a");
    expect(schedule).toHaveBeenLastCalledWith("ns/a", 5);
    for (let i = 0; i < 40; i++) queue.addRateLimited("ns/c");
    expect(schedule).toHaveBeenLastCalledWith("ns/c", 1_000_000);
  });

  it("delivers a rate-limited key after its backoff", async () => {
    vi.useFakeTimers();
    const queue = new WorkQueue({ name: "test" });
    queue.addRateLimited("ns/a");
    queue.addRateLimited("ns/a");
    expect(queue.length).toBe(0);
    vi.advanceTimersByTime(4);
    expect(queue.length).toBe(0);
    // The second call asked for 10 ms but the earlier 5 ms schedule wins.
    vi.advanceTimersByTime(1);
    expect(queue.length).toBe(1);
  });

  it("addAfter delays a key, keeps the earliest schedule, and adds at once for a zero delay", () => {
    vi.useFakeTimers();
    const queue = new WorkQueue({ name: "test" });
    queue.addAfter("ns/a", 1000);
    queue.addAfter("ns/a", 300);
    queue.addAfter("ns/a", 2000);
    vi.advanceTimersByTime(299);
    expect(queue.length).toBe(0);
    vi.advanceTimersByTime(1);
    expect(queue.length).toBe(1);
    vi.advanceTimersByTime(5000);
    expect(queue.length).toBe(1);
    queue.addAfter("ns/b", 0);
    expect(queue.length).toBe(2);
  });

  it("shutdown waits for in-flight work, drops waiting and delayed keys, and ignores new adds", async () => {
    const queue = new WorkQueue({ name: "test" });
    const release = deferred();
    const started: string[] = [];
    const finished: string[] = [];
    const running = queue.run(async (key) => {
      started.push(key);
      await release.promise;
      finished.push(key);
    }, 1);
    queue.add("ns/in-flight");
    queue.add("ns/waiting");
    queue.addAfter("ns/delayed", 10);
    await sleep(1);
    expect(started).toEqual(["ns/in-flight"]);

    let shutDown = false;
    const stopping = queue.shutdown().then(() => {
      shutDown = true;
    });
    queue.add("ns/late");
    await sleep(5);
    expect(shutDown).toBe(false);
    release.resolve();
    await stopping;
    await running;
    expect(finished).toEqual(["ns/in-flight"]);
    await sleep(20);
    expect(started).toEqual(["ns/in-flight"]);
    expect(await queue.get()).toBeUndefined();
  });

  it("retries a key whose handler throws", async () => {
    const queue = new WorkQueue({ name: "test", backoff: { baseDelayMs: 1 } });
    let calls = 0;
    const running = queue.run(async () => {
      calls++;
      if (calls < 3) throw new Error("boom");
    });
    queue.add("ns/a");
    await vi.waitFor(() => expect(calls).toBe(3));
    await queue.shutdown();
    await running;
  });

  it("reports depth, adds and retries labelled by queue name", async () => {
    const registry = new Registry();
    const queue = new WorkQueue({ name: "test", registry });
    new WorkQueue({ name: "other", registry }); // shares the metrics without re-registering
    queue.add("ns/a");
    queue.add("ns/a");
    queue.add("ns/b");
    expect(await metricValue(registry, "workqueue_depth")).toBe(2);
    expect(await metricValue(registry, "workqueue_adds_total")).toBe(2);
    queue.addRateLimited("ns/c");
    expect(await metricValue(registry, "workqueue_retries_total")).toBe(1);
    queue.done((await queue.get())!);
    expect(await metricValue(registry, "workqueue_depth")).toBe(1);
    await queue.shutdown();
  });
});
