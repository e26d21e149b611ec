import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import {
  type EndpointHealth,
  forgetEndpointHealth,
  readEndpointHealth,
} from "../../contract/endpoint-health.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { RedisClient } from "../../contract/redis-client.ts";

// The leader's view of endpoint health: reads the dispatchers' records (one HGETALL) every
// `intervalMs` and wakes the webhook controller for webhooks whose record changed: at once for a
// new state or the start or end of a run of failures, otherwise at most once per `minWriteMs`
// per webhook, so a failing endpoint costs a status write every half minute, not every attempt.
// Records of webhooks that no longer exist (in the namespaces this operator watches) are dropped.

export interface HealthPollerOptions {
  redis: RedisClient;
  keys: Keyspace;
  /** Wakes the webhook controller for `<namespace>/<name>`. */
  enqueue(key: string): void;
  /** The webhook's uid if it exists (and is watched), else undefined. */
  webhookUid(namespace: string, name: string): string | undefined;
  /** Whether this operator watches the namespace (only those records are its to drop). */
  watches(namespace: string): boolean;
  logger: Logger;
  intervalMs?: number;
  minWriteMs?: number;
}

export class EndpointHealthPoller {
  readonly #options: HealthPollerOptions;
  #records = new Map<string, EndpointHealth>();
  readonly #pending = new Set<string>();
  readonly #enqueuedAt = new Map<string, number>();
  #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #loaded = false;

  constructor(options: HealthPollerOptions) {
    this.#options = options;
  }

  /** The dispatchers' record of the webhook `<namespace>/<name>` with uid `uid` (another uid's is not its). */
  get(key: string, uid: string | undefined): EndpointHealth | undefined {
    const record = this.#records.get(key);
    return record && (record.uid === "" || uid === undefined || record.uid === uid) ? record : undefined;
  }

  /** Whether a poll has read the records (before that, no record says nothing). */
  get loaded(): boolean {
    return this.#loaded;
  }

  start(): void {
    this.#stop = new AbortController();
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.#loop = undefined;
    this.#loaded = false; // a later leadership reads afresh
  }

  /** One poll: read, compare, wake, drop the records of deleted webhooks. */
  async poll(nowMs = Date.now()): Promise<void> {
    const { redis, keys, enqueue, webhookUid, watches } = this.#options;
    const read = await readEndpointHealth(redis, keys);
    const records = new Map<string, EndpointHealth>();
    const stale: string[] = [];
    for (const [key, record] of read) {
      const [namespace = "", name = ""] = key.split("/");
      const uid = webhookUid(namespace, name);
      if (uid === undefined || (record.uid !== "" && record.uid !== uid)) {
        if (watches(namespace) && uid === undefined) stale.push(key);
        continue;
      }
      records.set(key, record);
      const previous = this.#records.get(key);
      if (previous && sameRecord(previous, record)) continue;
      if (urgent(previous, record)) this.#pending.add(`!${key}`);
      else this.#pending.add(key);
    }
    for (const key of this.#records.keys()) {
      if (!records.has(key)) this.#pending.add(`!${key}`);
    }
    this.#records = records;
    this.#loaded = true;
    const minWriteMs = this.#options.minWriteMs ?? 30_000;
    for (const entry of [...this.#pending]) {
      const now = entry.startsWith("!");
      const key = now ? entry.slice(1) : entry;
      if (!now && nowMs - (this.#enqueuedAt.get(key) ?? 0) < minWriteMs) continue;
      this.#pending.delete(entry);
      this.#pending.delete(key);
      this.#enqueuedAt.set(key, nowMs);
      enqueue(key);
    }
    if (stale.length > 0) await forgetEndpointHealth(redis, keys, stale);
  }

  async #run(): Promise<void> {
    const intervalMs = this.#options.intervalMs ?? 5_000;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        await this.poll();
      } catch (error) {
        this.#options.logger.warn({ err: error }, "endpoint health: reading Redis failed; retrying");
      }
      await sleep(intervalMs, undefined, { signal }).catch(() => {});
    }
  }
}

function sameRecord(a: EndpointHealth, b: EndpointHealth): boolean {
  const { updatedAt: _a, lastSuccessAt: _sa, ...restA } = a;
  const { updatedAt: _b, lastSuccessAt: _sb, ...restB } = b;
  return JSON.stringify(restA) === JSON.stringify(restB);
}

/** A new state, or a run of failures that started or ended: worth a status write at once. */
function urgent(previous: EndpointHealth | undefined, next: EndpointHealth): boolean {
  return (
    previous === undefined ||
    previous.state !== next.state ||
    (previous.firstFailureAt === undefined) !== (next.firstFailureAt === undefined)
  );
}
