import { z } from "zod";
import {
  type RetryOutcome,
  type RetryScope,
  readDelivery,
  readEvent,
  requestRetries,
  requestRetry,
} from "./deliveries.ts";
import {
  type DeliveryFilter,
  type DeliveryPage,
  type DeliverySummary,
  InvalidCursorError,
  listDeliveries,
  type PageRequest,
} from "./delivery-log.ts";
import type { Keyspace } from "./keys.ts";
import type { Partitions } from "./partitions.ts";
import type { RecordLimits } from "./record-limits.ts";
import type { DeliveryRecord, EventRecord } from "./records.ts";
import type { RedisClient } from "./redis-client.ts";

// The event log over every partition (partitions.ts). A namespace lives in one partition, but
// reads look in all of them: a delivery stays where it was made when the partition count changes,
// and a read by id does not know its namespace. With one partition each call is the partition's own
// (same cursors as before partitioning).

/**
 * Lists newest first over every partition: each partition's page (delivery-log.ts), merged by
 * creation time. The cursor holds, per partition, where its walk goes on ("" = from the newest,
 * null = done). A partition whose page was only partly taken is listed again for exactly the part
 * taken, so its cursor stops right after it: nothing is skipped, nothing shown twice. (The order
 * across partitions is exact unless a filter that the indexes do not serve — phase, event type —
 * ends a partition's walk early on its scan budget; nothing is lost then either.)
 */
export async function listDeliveriesAcross(
  redis: RedisClient,
  filter: DeliveryFilter,
  page: PageRequest,
  partitions: Partitions,
): Promise<DeliveryPage> {
  if (partitions.count === 1) return listDeliveries(redis, filter, page, partitions.global);
  const cursors =
    page.cursor === undefined ? partitions.all.map(() => "") : decodeCursor(page.cursor, partitions);
  const request = (cursor: string, limit: number): PageRequest => ({
    limit,
    ...(cursor === "" ? {} : { cursor }),
    ...(page.scanBudget === undefined ? {} : { scanBudget: page.scanBudget }),
  });
  const pages = await Promise.all(
    partitions.all.map((keys, i): Promise<DeliveryPage> | DeliveryPage => {
      const cursor = cursors[i];
      return cursor === null || cursor === undefined
        ? { items: [] }
        : listDeliveries(redis, filter, request(cursor, page.limit), keys);
    }),
  );
  // k-way merge, newest first; each partition's own order is kept
  const taken = pages.map(() => 0);
  const items: DeliverySummary[] = [];
  while (items.length < page.limit) {
    let best = -1;
    for (let i = 0; i < pages.length; i++) {
      const head = pages[i]!.items[taken[i]!];
      if (head && (best < 0 || head.createdAt > pages[best]!.items[taken[best]!]!.createdAt)) best = i;
    }
    if (best < 0) break;
    items.push(pages[best]!.items[taken[best]!]!);
    taken[best]!++;
  }
  const next = await Promise.all(
    pages.map(async (partitionPage, i): Promise<string | null> => {
      const cursor = cursors[i] ?? null;
      if (cursor === null) return null;
      const count = taken[i]!;
      if (count === partitionPage.items.length) return partitionPage.nextCursor ?? null;
      if (count === 0) return cursor;
      const again = await listDeliveries(redis, filter, request(cursor, count), partitions.all[i]!);
      return again.nextCursor ?? null;
    }),
  );
  return next.every((cursor) => cursor === null) ? { items } : { items, nextCursor: encodeCursor(next) };
}

/** The partition that holds a delivery's record, if any. */
export async function partitionOfDelivery(
  redis: RedisClient,
  id: string,
  partitions: Partitions,
): Promise<Keyspace | undefined> {
  if (partitions.count === 1) return partitions.global;
  const found = await Promise.all(partitions.all.map((keys) => redis.exists(keys.delivery(id))));
  const index = found.findIndex((count) => count > 0);
  return index < 0 ? undefined : partitions.all[index];
}

export async function readDeliveryAcross(
  redis: RedisClient,
  id: string,
  partitions: Partitions,
): Promise<DeliveryRecord | null> {
  const keys = await partitionOfDelivery(redis, id, partitions);
  return keys === undefined ? null : readDelivery(redis, id, keys);
}

/** requestRetry in the partition that holds the delivery ("not-found" when none does). */
export async function requestRetryAcross(
  redis: RedisClient,
  id: string,
  token: string,
  partitions: Partitions,
  limits: RecordLimits,
  scope: RetryScope,
): Promise<{ outcome: RetryOutcome }> {
  const keys = await partitionOfDelivery(redis, id, partitions);
  if (keys === undefined) return { outcome: "not-found" };
  return requestRetry(redis, id, token, keys, limits, scope);
}

export interface BulkRetryCounts {
  requeued: number;
  alreadyHonoured: number;
  notFailed: number;
  notFound: number;
}

/**
 * Retries up to `limit` FAILED deliveries matching the filter, partition by partition (the
 * namespace's first): each partition's ids are collected first, then requeued in batches —
 * requeuing moves deliveries out of the index being walked.
 */
export async function retryFailedDeliveries(
  redis: RedisClient,
  filter: Omit<DeliveryFilter, "phase">,
  token: string,
  limit: number,
  partitions: Partitions,
  limits: RecordLimits,
  scope: RetryScope,
): Promise<BulkRetryCounts> {
  const counts: BulkRetryCounts = { requeued: 0, alreadyHonoured: 0, notFailed: 0, notFound: 0 };
  let left = limit;
  for (const keys of ordered(partitions, filter.namespace)) {
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const pageLimit = Math.min(left - ids.length, 500);
      const page = await listDeliveries(
        redis,
        { ...filter, phase: "FAILED" },
        cursor === undefined ? { limit: pageLimit } : { limit: pageLimit, cursor },
        keys,
      );
      for (const item of page.items) ids.push(item.id);
      cursor = page.nextCursor;
    } while (cursor !== undefined && ids.length < left);
    left -= ids.length;
    for (let i = 0; i < ids.length; i += 500) {
      for (const outcome of await requestRetries(redis, ids.slice(i, i + 500), token, keys, limits, scope)) {
        if (outcome === "requeued") counts.requeued++;
        else if (outcome === "already-honoured") counts.alreadyHonoured++;
        else if (outcome === "not-failed") counts.notFailed++;
        else counts.notFound++;
      }
    }
    if (left <= 0) break;
  }
  return counts;
}

/** An event's record: in its namespace's partition, else (made before a partition count change) another. */
export async function readEventAcross(
  redis: RedisClient,
  namespace: string,
  eventId: string,
  partitions: Partitions,
): Promise<EventRecord | null> {
  for (const keys of ordered(partitions, namespace)) {
    const event = await readEvent(redis, namespace, eventId, keys);
    if (event !== null) return event;
  }
  return null;
}

/** The partitions, the namespace's first. */
function ordered(partitions: Partitions, namespace: string | undefined): Keyspace[] {
  if (namespace === undefined) return [...partitions.all];
  const home = partitions.of(namespace);
  return [home, ...partitions.all.filter((keys) => keys !== home)];
}

const CURSOR_PREFIX = "P";
const CursorSchema = z.array(z.string().nullable());

function encodeCursor(cursors: ReadonlyArray<string | null>): string {
  return `${CURSOR_PREFIX}${Buffer.from(JSON.stringify(cursors)).toString("base64url")}`;
}

function decodeCursor(cursor: string, partitions: Partitions): Array<string | null> {
  if (cursor.startsWith(CURSOR_PREFIX)) {
    try {
      const parsed = CursorSchema.safeParse(
        JSON.parse(Buffer.from(cursor.slice(CURSOR_PREFIX.length), "base64url").toString()),
      );
      if (parsed.success && parsed.data.length === partitions.count) return parsed.data;
    } catch {
      // not JSON: refused below
    }
  }
  throw new InvalidCursorError("invalid cursor");
}
