import { z } from "zod";
import type { Keyspace } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";
import { appendRequest, deleteRequests, readRequests } from "./streams/request-stream.ts";

// What became of a delivery whose WebhookEvent still shows QUEUED but whose record is gone from
// Redis: lost with Redis's data, or completed, archived in the durable log store and expired after
// the hot window while no operator read its status entries (the stream is capped). The operator
// cannot read the store: it leaves a request here, and the replica that archives the partition
// answers it — the record back in Redis for the hot window plus a status entry (the mirror then
// shows the final state as ever), or a marker that the store does not have it (the mirror marks
// the WebhookEvent Lost). Nothing is answered while the store is down: the request waits.

/** A delivery the mirror asks about, in the namespace of its WebhookEvent. */
export const StatusRequestSchema = z.object({
  deliveryId: z.string().min(1),
  namespace: z.string().min(1),
});
export type StatusRequest = z.infer<typeof StatusRequestSchema>;

/** One entry of the stream: `request` undefined when it does not decode (forgotten unanswered). */
export interface StatusRequestEntry {
  entryId: string;
  request: StatusRequest | undefined;
}

/** How long the answer "the store does not have it" waits for the mirror's next re-check. */
export const MISSING_ANSWER_TTL_MS = 3_600_000;

export async function requestStatus(
  redis: RedisClient,
  keys: Keyspace,
  request: StatusRequest,
): Promise<void> {
  await appendRequest(redis, keys.archiveStatusRequests, {
    id: request.deliveryId,
    namespace: request.namespace,
  });
}

/** The oldest `count` requests waiting (they stay until `forgetStatusRequests`). */
export async function readStatusRequests(
  redis: RedisClient,
  keys: Keyspace,
  count: number,
): Promise<StatusRequestEntry[]> {
  return (await readRequests(redis, keys.archiveStatusRequests, count)).map(({ entryId, fields }) => {
    const parsed = StatusRequestSchema.safeParse({ deliveryId: fields.id, namespace: fields.namespace });
    return { entryId, request: parsed.success ? parsed.data : undefined };
  });
}

export async function forgetStatusRequests(
  redis: RedisClient,
  keys: Keyspace,
  entryIds: string[],
): Promise<void> {
  await deleteRequests(redis, keys.archiveStatusRequests, entryIds);
}

/** The answer: the store has no delivery of this id in this namespace. */
export async function answerMissing(
  redis: RedisClient,
  keys: Keyspace,
  request: StatusRequest,
): Promise<void> {
  await redis.set(
    keys.archiveMissing(request.namespace, request.deliveryId),
    "1",
    "PX",
    MISSING_ANSWER_TTL_MS,
  );
}

/** Whether the dispatchers answered that the store does not have it. */
export async function answeredMissing(
  redis: RedisClient,
  keys: Keyspace,
  request: StatusRequest,
): Promise<boolean> {
  return (await redis.exists(keys.archiveMissing(request.namespace, request.deliveryId))) === 1;
}

/** Drops the answer once the mirror has acted on it. */
export async function forgetMissingAnswer(
  redis: RedisClient,
  keys: Keyspace,
  request: StatusRequest,
): Promise<void> {
  await redis.del(keys.archiveMissing(request.namespace, request.deliveryId));
}
