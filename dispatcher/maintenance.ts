import type { Logger } from "pino";
import { PeriodicLoop } from "../common/periodic-loop.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../contract/keys.ts";
import { publishRecordLimits, type RecordLimits } from "../contract/record-limits.ts";
import type { RedisClient } from "../contract/redis-client.ts";
import { healOrderedQueuesScript } from "../contract/scripts/heal-ordered-queues.ts";
import { runScript } from "../contract/scripts/script.ts";
import { trimLogIndexesScript } from "../contract/scripts/trim-log-indexes.ts";
import { removeIdleConsumers, trimAcknowledged } from "../contract/streams/stream-maintenance.ts";
import type { Metrics } from "./metrics.ts";

/** Consumers holding nothing for this long belong to replicas that are gone. */
const DEAD_CONSUMER_IDLE_MS = 3_600_000;

export interface MaintenanceOptions {
  redis: RedisClient;
  keys: Keyspace;
  /** The record limits this replica runs with (retention, status stream cap). */
  limits: RecordLimits;
  intervalMs: number;
  /** Consumers holding nothing for this long belong to replicas that are gone (default 1 h). */
  deadConsumerIdleMs?: number;
  metrics: Metrics;
  logger: Logger;
  /**
   * With a durable log store: the creation time below which the event log indexes are trimmed
   * (the archive horizon, archive/archiver.ts) instead of the retention's.
   */
  indexHorizon?: () => Promise<number>;
}

/**
 * Keeps Redis bounded: trims stream entries every group has acknowledged, drops event log index
 * entries past retention (the records themselves expire by TTL), and forgets consumers of
 * replicas long gone. Moves on ordered queues whose head's record is gone. Every step is idempotent, so all replicas may run it.
 */
export class Maintenance {
  readonly #options: MaintenanceOptions;
  readonly #loop: PeriodicLoop;

  constructor(options: MaintenanceOptions) {
    this.#options = options;
    this.#loop = new PeriodicLoop({
      intervalMs: options.intervalMs,
      immediate: false,
      tick: () => this.runOnce(),
      onError: (error) => {
        options.metrics.redisErrors.inc({ loop: "maintenance" });
        options.logger.warn({ err: error }, "maintenance failed; next round retries");
      },
    });
  }

  start(): void {
    this.#loop.start();
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  async runOnce(): Promise<void> {
    const { redis, keys, limits } = this.#options;
    const { retentionMs } = limits;
    // again every round: after a loss of Redis's data the operator's retries need them back
    await publishRecordLimits(redis, keys, limits);
    await trimAcknowledged(redis, keys.events);
    await trimAcknowledged(redis, keys.deliveries);
    const horizon = this.#options.indexHorizon
      ? await this.#options.indexHorizon()
      : Date.now() - retentionMs;
    await trimLogIndexes(redis, keys, horizon);
    await trimLegacyLogIndexes(redis, keys, horizon);
    const idleMs = this.#options.deadConsumerIdleMs ?? DEAD_CONSUMER_IDLE_MS;
    await removeIdleConsumers(redis, keys.events, CONSUMER_GROUPS.fanout, idleMs);
    await removeIdleConsumers(redis, keys.deliveries, CONSUMER_GROUPS.delivery, idleMs);
    const healed = (await runScript(
      redis,
      healOrderedQueuesScript,
      [keys.deliveries, keys.orderedQueues],
      [keys.prefix],
    )) as number;
    if (healed > 0)
      this.#options.logger.warn(
        { queues: healed },
        "ordered queues whose head was gone (lost or expired) moved on to their next delivery",
      );
  }
}

/** The event log's streams: entries created before the horizon go, and indexes left empty. */
async function trimLogIndexes(redis: RedisClient, keys: Keyspace, horizon: number): Promise<void> {
  await runScript(redis, trimLogIndexesScript, [keys.logIndexes], [horizon, keys.logAll]);
  let cursor = "0";
  do {
    const [next, indexes] = await redis.sscan(keys.logIndexes, cursor, "COUNT", 500);
    cursor = next;
    if (indexes.length > 0)
      await runScript(redis, trimLogIndexesScript, [keys.logIndexes], [horizon, ...indexes]);
  } while (cursor !== "0");
}

/** The sorted sets of format 1 (and FAILED, still one): members created before the horizon go. */
async function trimLegacyLogIndexes(redis: RedisClient, keys: Keyspace, horizon: number): Promise<void> {
  const fixed = [keys.legacyLog.all, keys.logFailed];
  const pipeline = redis.pipeline();
  // exclusive: a member created at the horizon itself is still listed by Redis (archive-log.ts)
  for (const index of fixed) pipeline.zremrangebyscore(index, "-inf", `(${horizon}`);
  await pipeline.exec();
  let cursor = "0";
  do {
    const [next, indexes] = await redis.sscan(keys.legacyLog.indexes, cursor, "COUNT", 500);
    cursor = next;
    if (indexes.length === 0) continue;
    const trim = redis.pipeline();
    for (const index of indexes) trim.zremrangebyscore(index, "-inf", `(${horizon}`).zcard(index);
    const replies = (await trim.exec()) ?? [];
    const empty = indexes.filter((_, i) => Number(replies[i * 2 + 1]?.[1]) === 0);
    if (empty.length > 0) await redis.srem(keys.legacyLog.indexes, ...empty);
  } while (cursor !== "0");
}
