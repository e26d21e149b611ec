import { z } from "zod";
import { EventTypeSchema } from "./event-types.ts";
import type { Keyspace } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";

// WebhookReplays over the durable log store. The operator walks the Redis log (its index reaches
// back to the archive horizon only when a store is on) and has no connection to the store: when
// that walk is done it leaves the rest of the replay here, and the replica that archives the
// namespace's partition walks the store for the deliveries the Redis walk could not list, requeues (or copies) them with the same token, and writes its progress back here for the
// operator's status. A token is honoured once per delivery on either side, so a delivery both
// walks see is sent once.

const RequeuablePhaseSchema = z.enum(["FAILED", "SENT"]);

export const ArchiveReplayRequestSchema = z.object({
  namespace: z.string().min(1),
  /** the WebhookReplay's name: a new generation or a deleted replay cancels the older request */
  replay: z.string().min(1),
  /** `replay:<uid>:<generation>`, honoured once per delivery */
  token: z.string().min(1),
  /** deliveries created in [from, to], epoch ms */
  from: z.number().int(),
  to: z.number().int(),
  /**
   * The archive horizon when the Redis walk finished: it listed the deliveries created at or after
   * it that Redis still had a record of; the store's walk takes the others (created before it, or
   * expired from Redis since they were archived).
   */
  horizon: z.number().int(),
  phases: z.array(RequeuablePhaseSchema).min(1),
  webhook: z.string().min(1).optional(),
  eventType: EventTypeSchema.optional(),
  /** a copy to this webhook instead of a requeue (WebhookReplay.spec.targetWebhook) */
  targetWebhook: z.string().min(1).optional(),
  maxPerSecond: z.number().int().min(1).max(1_000),
});
export type ArchiveReplayRequest = z.infer<typeof ArchiveReplayRequestSchema>;

export const ArchiveReplayProgressSchema = z.object({
  /** the replay's totals, the Redis walk's included (the operator hands them over in the request) */
  matched: z.number().int().min(0),
  requeued: z.number().int().min(0),
  skipped: z.number().int().min(0),
  /** the last row walked, newest first: (creation time, id); null before the first page */
  cursor: z.tuple([z.number().int(), z.string()]).nullable(),
  done: z.boolean(),
  /** epoch ms: the next page is not due before (the replay's rate) */
  nextPageAt: z.number().int(),
  updatedAt: z.number().int(),
});
export type ArchiveReplayProgress = z.infer<typeof ArchiveReplayProgressSchema>;

/** A request and where its walk stands. */
export interface ArchiveReplay {
  request: ArchiveReplayRequest;
  progress: ArchiveReplayProgress;
}

/**
 * Leaves the store's part of a replay for the dispatchers, with the Redis walk's counts to go on
 * from. Idempotent: a request already there (an operator that restarted, another leader) keeps its
 * progress. Requests of the same WebhookReplay with another token (an older generation) are dropped.
 */
export async function requestArchiveReplay(
  redis: RedisClient,
  keys: Keyspace,
  request: ArchiveReplayRequest,
  counts: { matched: number; requeued: number; skipped: number },
  now: number = Date.now(),
): Promise<void> {
  await cancelArchiveReplays(redis, keys, request.namespace, request.replay, request.token);
  const progress: ArchiveReplayProgress = {
    ...counts,
    cursor: null,
    done: false,
    nextPageAt: 0,
    updatedAt: now,
  };
  await redis
    .multi()
    .hsetnx(keys.archiveReplays, request.token, JSON.stringify(request))
    .hsetnx(keys.archiveReplayProgress, request.token, JSON.stringify(progress))
    .exec();
}

/** Where the store's part of a replay stands; null when nobody asked for it (or it was forgotten). */
export async function readArchiveReplayProgress(
  redis: RedisClient,
  keys: Keyspace,
  token: string,
): Promise<ArchiveReplayProgress | null> {
  return parseProgress(await redis.hget(keys.archiveReplayProgress, token));
}

/** Every replay waiting in the partition (a handful: one per running WebhookReplay). */
export async function readArchiveReplays(redis: RedisClient, keys: Keyspace): Promise<ArchiveReplay[]> {
  const [requests, progresses] = await Promise.all([
    redis.hgetall(keys.archiveReplays),
    redis.hgetall(keys.archiveReplayProgress),
  ]);
  const out: ArchiveReplay[] = [];
  for (const [token, value] of Object.entries(requests)) {
    const request = parseRequest(value);
    const progress = parseProgress(progresses[token]);
    // unreadable (another version wrote it): left alone, never acted on in part
    if (request !== null && progress !== null) out.push({ request, progress });
  }
  return out;
}

/** Records how far the store's walk got. Not when the request was cancelled meanwhile. */
export async function writeArchiveReplayProgress(
  redis: RedisClient,
  keys: Keyspace,
  token: string,
  progress: ArchiveReplayProgress,
): Promise<void> {
  if ((await redis.hexists(keys.archiveReplays, token)) === 0) return;
  await redis.hset(keys.archiveReplayProgress, token, JSON.stringify(progress));
}

/** Forgets a replay's request and progress (the operator read its end, or it was cancelled). */
export async function forgetArchiveReplay(redis: RedisClient, keys: Keyspace, token: string): Promise<void> {
  await redis.multi().hdel(keys.archiveReplays, token).hdel(keys.archiveReplayProgress, token).exec();
}

/** Cancels the requests of a WebhookReplay (deleted, or a new generation), but `keep`'s. */
export async function cancelArchiveReplays(
  redis: RedisClient,
  keys: Keyspace,
  namespace: string,
  replay: string,
  keep?: string,
): Promise<number> {
  const requests = await redis.hgetall(keys.archiveReplays);
  let cancelled = 0;
  for (const [token, value] of Object.entries(requests)) {
    const request = parseRequest(value);
    if (token === keep || request?.namespace !== namespace || request.replay !== replay) continue;
    await forgetArchiveReplay(redis, keys, token);
    cancelled++;
  }
  return cancelled;
}

function parseRequest(value: string | undefined): ArchiveReplayRequest | null {
  if (value === undefined) return null;
  const parsed = ArchiveReplayRequestSchema.safeParse(safeJson(value));
  return parsed.success ? parsed.data : null;
}

function parseProgress(value: string | null | undefined): ArchiveReplayProgress | null {
  if (value === undefined || value === null) return null;
  const parsed = ArchiveReplayProgressSchema.safeParse(safeJson(value));
  return parsed.success ? parsed.data : null;
}

function safeJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}
