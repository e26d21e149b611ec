import { z } from "zod";
import type { Keyspace } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";

/**
 * Limits every writer of delivery records must apply alike. They are the dispatcher's settings
 * (DISPATCHER_RETENTION_MS, DISPATCHER_STATUS_STREAM_MAXLEN); the dispatchers publish them to
 * Redis at start and every maintenance round, and the operator reads them from there, so the two can never disagree through
 * a default that one side forgot to override.
 */
export interface RecordLimits {
  /** How long delivery and event records live after their last change. */
  retentionMs: number;
  /** Approximate cap of the status stream. */
  statusStreamMaxLen: number;
  /**
   * The dispatchers archive completed deliveries into a durable log store (Postgres): the fan-out
   * and the settle then keep the archive's sets (Keyspace.archivePending, archiveOpen). Not
   * published: only the dispatchers' scripts need it.
   */
  archive?: boolean;
}

const RecordLimitsSchema = z.object({
  retentionMs: z.coerce.number().int().positive(),
  statusStreamMaxLen: z.coerce.number().int().positive(),
});

/** No dispatcher has published its limits to this keyspace yet (or Redis lost them). */
export class RecordLimitsUnknownError extends Error {
  constructor(key: string) {
    super(`no dispatcher has published its record limits (${key}) yet; retrying once one has started`);
    this.name = "RecordLimitsUnknownError";
  }
}

/** Written by every dispatcher replica at start and every maintenance round (they share one configuration). */
export async function publishRecordLimits(
  redis: RedisClient,
  keys: Keyspace,
  limits: RecordLimits,
): Promise<void> {
  await redis.hset(keys.recordLimits, {
    retentionMs: String(limits.retentionMs),
    statusStreamMaxLen: String(limits.statusStreamMaxLen),
  });
}

/** The limits the dispatchers run with; throws RecordLimitsUnknownError when none were published. */
export async function readRecordLimits(redis: RedisClient, keys: Keyspace): Promise<RecordLimits> {
  const hash = await redis.hgetall(keys.recordLimits);
  if (Object.keys(hash).length === 0) throw new RecordLimitsUnknownError(keys.recordLimits);
  return RecordLimitsSchema.parse(hash);
}
