import { fieldsToObject } from "../records.ts";
import type { RedisClient } from "../redis-client.ts";

// A stream of requests one process leaves for another to serve (the operator's retries and status
// questions about deliveries only the durable log store has): appended with a cap, read oldest
// first, deleted once served. The cap is a bound, not a queue anyone should reach.

/** Requests beyond this are trimmed, oldest first. */
const MAX_REQUESTS = 100_000;

export async function appendRequest(
  redis: RedisClient,
  stream: string,
  fields: Readonly<Record<string, string>>,
): Promise<void> {
  await redis.xadd(stream, "MAXLEN", "~", MAX_REQUESTS, "*", ...Object.entries(fields).flat());
}

/** The oldest `count` requests, each with its entry id (for `deleteRequests`) and its fields. */
export async function readRequests(
  redis: RedisClient,
  stream: string,
  count: number,
): Promise<Array<{ entryId: string; fields: Record<string, string> }>> {
  const entries = (await redis.xrange(stream, "-", "+", "COUNT", count)) as Array<[string, string[]]>;
  return entries.map(([entryId, fields]) => ({ entryId, fields: fieldsToObject(fields) }));
}

export async function deleteRequests(redis: RedisClient, stream: string, entryIds: string[]): Promise<void> {
  if (entryIds.length > 0) await redis.xdel(stream, ...entryIds);
}
