import type { Keyspace } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";
import { appendRequest, deleteRequests, readRequests } from "./streams/request-stream.ts";

// Retries of deliveries that only the durable log store (PostgreSQL, read by the dispatchers)
// still has. The operator's retry annotation finds no record in Redis for them, and the operator
// has no connection to the store: it leaves the request here, and the replica that archives the
// partition brings the delivery back into Redis and requeues it with the same token-once retry.

/** A retry waiting for a dispatcher to bring its delivery back from the store. */
export interface RestoreRequest {
  /** the stream entry, to delete once served */
  entryId: string;
  deliveryId: string;
  token: string;
  /** the namespace the request was made in: the delivery must belong to it */
  namespace: string;
}

/** Whether the dispatchers archive this partition into a store (they mark it when they start). */
export async function archivesToStore(redis: RedisClient, keys: Keyspace): Promise<boolean> {
  return (await redis.exists(keys.archiveAdopted)) === 1;
}

export async function requestRestore(
  redis: RedisClient,
  keys: Keyspace,
  request: Omit<RestoreRequest, "entryId">,
): Promise<void> {
  await appendRequest(redis, keys.archiveRestore, {
    id: request.deliveryId,
    token: request.token,
    namespace: request.namespace,
  });
}

/** The oldest `count` requests waiting (they stay until `forgetRestoreRequests`). */
export async function readRestoreRequests(
  redis: RedisClient,
  keys: Keyspace,
  count: number,
): Promise<RestoreRequest[]> {
  return (await readRequests(redis, keys.archiveRestore, count)).map(({ entryId, fields }) => ({
    entryId,
    deliveryId: fields.id ?? "",
    token: fields.token ?? "",
    namespace: fields.namespace ?? "",
  }));
}

export async function forgetRestoreRequests(
  redis: RedisClient,
  keys: Keyspace,
  entryIds: string[],
): Promise<void> {
  await deleteRequests(redis, keys.archiveRestore, entryIds);
}
