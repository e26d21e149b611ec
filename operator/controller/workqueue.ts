import type { Counter, Gauge, Histogram, Registry } from "prom-client";
import { counter, durationBuckets, gauge, histogram } from "./metrics.ts";

// A work queue with client-go / controller-runtime semantics:
//  - a key waiting in the queue is there once, however often it is added (dedup);
//  - a key is never handed to two workers at once: added while being processed,
//    it is queued again when its worker calls `done`;
//  - failures back off per key (5 ms doubling to 1000 s) until `forget`;
//  - `addAfter` schedules a key; the earliest schedule for a key wins.

export interface BackoffOptions {
  /** Delay after the first failure. Default 5 ms. */
  baseDelayMs?: number;
  /** Ceiling of the delay. Default 1000 s. */
  maxDelayMs?: number;
}

export interface WorkQueueOptions {
  /** Value of the `name` label of the workqueue_* metrics. */
  name: string;
  /** Where the workqueue_* metrics are registered; none when absent. */
  registry?: Registry;
  backoff?: BackoffOptions;
}

/** Processes one key. Should not throw; if it does, the key is retried with backoff. */
export type KeyHandler = (key: string) => Promise<void>;

interface QueueMetrics {
  depth: Gauge<"name">;
  adds: Counter<"name">;
  retries: Counter<"name">;
  queueDuration: Histogram<"name">;
  workDuration: Histogram<"name">;
}

export class WorkQueue {
  readonly name: string;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly metrics: QueueMetrics | undefined;

  /** Keys ready for a worker, in order. */
  private readonly queue: string[] = [];
  /** Keys that need processing (queued, or re-added while being processed) with the time they were added. */
  private readonly dirty = new Map<string, number>();
  /** Keys a worker holds right now. */
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly waiters: Array<() => void> = [];
  private readonly idleWaiters: Array<() => void> = [];
  private workers: Promise<void> | undefined;
  private stopping = false;

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.baseDelayMs = options.backoff?.baseDelayMs ?? 5;
    this.maxDelayMs = options.backoff?.maxDelayMs ?? 1_000_000;
    const registry = options.registry;
    this.metrics = registry && {
      depth: gauge(registry, "workqueue_depth", "Current depth of workqueue", ["name"]),
      adds: counter(registry, "workqueue_adds_total", "Total number of adds handled by workqueue", ["name"]),
      retries: counter(registry, "workqueue_retries_total", "Total number of retries handled by workqueue", [
        "name",
      ]),
      queueDuration: histogram(
        registry,
        "workqueue_queue_duration_seconds",
        "How long in seconds an item stays in workqueue before being requested",
        ["name"],
        durationBuckets,
      ),
      workDuration: histogram(
        registry,
        "workqueue_work_duration_seconds",
        "How long in seconds processing an item from workqueue takes",
        ["name"],
        durationBuckets,
      ),
    };
    this.metrics?.depth.set({ name: this.name }, 0);
  }

  /** Number of keys waiting for a worker (not counting delayed or in-flight keys). */
  get length(): number {
    return this.queue.length;
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** Queues `key` unless it is already waiting; a key being processed is queued again once done. */
  add(key: string): void {
    if (this.stopping || this.dirty.has(key)) return;
    this.dirty.set(key, performance.now());
    this.metrics?.adds.inc({ name: this.name });
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Queues `key` after `delayMs`. An earlier pending schedule for the same key is kept. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopping) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending) {
      if (pending.at <= at) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** Queues `key` after its per-key backoff, which doubles with each call until `forget`. */
  addRateLimited(key: string): void {
    if (this.stopping) return;
    this.metrics?.retries.inc({ name: this.name });
    this.addAfter(key, this.nextBackoff(key));
  }

  /** Resets the backoff of `key` (call after a success). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How many times `key` has been rate-limited since it was last forgotten. */
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /**
   * Waits for the next key and marks it as being processed; the caller must call
   * `done(key)` afterwards. Resolves `undefined` once the queue shuts down.
   */
  async get(): Promise<string | undefined> {
    while (this.queue.length === 0) {
      if (this.stopping) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const key = this.queue.shift()!;
    const addedAt = this.dirty.get(key);
    this.dirty.delete(key);
    this.processing.add(key);
    this.metrics?.depth.set({ name: this.name }, this.queue.length);
    if (addedAt !== undefined) {
      this.metrics?.queueDuration.observe({ name: this.name }, (performance.now() - addedAt) / 1000);
    }
    return key;
  }

  /** Ends the processing of `key`; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.stopping) this.push(key);
    if (this.processing.size === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /**
   * Runs `workers` loops that take keys and hand them to `handler`, one key per
   * worker at a time. Resolves when the queue has shut down and every loop has ended.
   */
  run(handler: KeyHandler, workers = 1): Promise<void> {
    if (this.workers) throw new Error(`work queue ${this.name} is already running`);
    const loop = async (): Promise<void> => {
      for (;;) {
        const key = await this.get();
        if (key === undefined) return;
        const started = performance.now();
        try {
          await handler(key);
        } catch {
          this.addRateLimited(key);
        } finally {
          this.metrics?.workDuration.observe({ name: this.name }, (performance.now() - started) / 1000);
          this.done(key);
        }
      }
    };
    this.workers = Promise.all(Array.from({ length: Math.max(1, workers) }, loop)).then(() => undefined);
    return this.workers;
  }

  /**
   * Stops accepting keys, drops the waiting and delayed ones, and resolves once
   * every key being processed is done (in-flight work drains, nothing new starts).
   */
  async shutdown(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      for (const { timer } of this.delayed.values()) clearTimeout(timer);
      this.delayed.clear();
      this.queue.length = 0;
      this.dirty.clear();
      this.metrics?.depth.set({ name: this.name }, 0);
      for (const resolve of this.waiters.splice(0)) resolve();
    }
    if (this.processing.size > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    await this.workers;
  }

  private push(key: string): void {
    this.queue.push(key);
    this.metrics?.depth.set({ name: this.name }, this.queue.length);
    this.waiters.shift()?.();
  }

  private nextBackoff(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    // 2 ** failures overflows to Infinity long after it has passed the ceiling.
    return Math.min(this.baseDelayMs * 2 ** failures, this.maxDelayMs);
  }
}
