import { setTimeout as sleep } from "node:timers/promises";
import { reportEndpointHealth } from "../../contract/endpoint-health.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { EndpointHealthTracker } from "./endpoint-health.ts";

// Publishes a worker's endpoint health (endpoint-health.ts) to Redis for the operator: one script
// call a tick with whatever the tracker says is due, off the delivery path. A failed write is
// reported and its records are due again at the next tick.

export interface EndpointHealthPublisherOptions {
  redis: RedisClient;
  keys: Keyspace;
  tracker: EndpointHealthTracker;
  intervalMs?: number;
  onError(error: unknown): void;
}

export class EndpointHealthPublisher {
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  private readonly options: EndpointHealthPublisherOptions;

  constructor(options: EndpointHealthPublisherOptions) {
    this.options = options;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops after one last publication of what is due (given a second at most: Redis may be down). */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    await Promise.race([this.publish(), sleep(1_000)]);
  }

  async publish(): Promise<void> {
    const { redis, keys, tracker, onError } = this.options;
    const due = tracker.due(Date.now());
    try {
      await reportEndpointHealth(redis, keys, due);
    } catch (error) {
      tracker.retry(due.map((record) => record.field));
      onError(error);
    }
  }

  async #run(): Promise<void> {
    const intervalMs = this.options.intervalMs ?? 1_000;
    while (!this.#stop.signal.aborted) {
      await sleep(intervalMs, undefined, { signal: this.#stop.signal }).catch(() => {});
      if (!this.#stop.signal.aborted) await this.publish();
    }
  }
}
