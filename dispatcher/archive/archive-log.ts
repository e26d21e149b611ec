import { z } from "zod";
import { type RetryOutcome, type RetryScope, requestRetry } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import {
  type DeliveryFilter,
  type DeliveryPage,
  type DeliverySummary,
  InvalidCursorError,
  matchesFilter,
  type PageRequest,
} from "../../contract/delivery-log.ts";
import type { Keyspace } from "../../contract/keys.ts";
import { notificationData } from "../../contract/notification.ts";
import {
  type BulkRetryCounts,
  listDeliveriesAcross,
  readDeliveryAcross,
  readEventAcross,
  requestRetryAcross,
} from "../../contract/partitioned-log.ts";
import type { Partitions } from "../../contract/partitions.ts";
import type { RecordLimits } from "../../contract/record-limits.ts";
import {
  DELIVERY_FORMAT,
  type DeliveryRecord,
  type EventRecord,
  EventRecordSchema,
  packDelivery,
} from "../../contract/records.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { restoreDeliveryScript } from "../../contract/scripts/restore-delivery.ts";
import { runScript } from "../../contract/scripts/script.ts";
import type { ArchivedDelivery, ArchivedSummary, ArchiveKey, ArchiveStore } from "./archive-store.ts";

// The event log when a durable log store is configured: Redis holds the active deliveries and the
// hot window, the store everything completed. Where one hands over to the other is the archive
// horizon H (Keyspace.archiveHorizon, only ever raised; the indexes are trimmed below it, and it
// never passes a delivery that is not archived yet). So every delivery is listed exactly once:
//   - from Redis, when created at or after H (the Redis listing, its older entries left out);
//   - from the store, when created before H, or when Redis has no record of it any more — in its
//     Redis state if Redis still has one (e.g. retried since), which is fresher.
// A listing merges the two newest first; the cursor holds each side's position.

export interface ArchivedLogOptions {
  redis: RedisClient;
  partitions: Partitions;
  store: ArchiveStore;
  limits: RecordLimits;
}

export class ArchivedLog {
  readonly #options: ArchivedLogOptions;

  constructor(options: ArchivedLogOptions) {
    this.#options = options;
  }

  async horizon(): Promise<number> {
    const { redis, partitions } = this.#options;
    return Number((await redis.get(partitions.global.archiveHorizon)) ?? 0);
  }

  async list(filter: DeliveryFilter, page: PageRequest): Promise<DeliveryPage> {
    const { redis, partitions, store } = this.#options;
    const { limit } = page;
    const cursor: Cursor = page.cursor === undefined ? { r: "", a: "", t: null } : decodeCursor(page.cursor);
    const horizon = await this.horizon();
    const redisRequest = (from: string, count: number): PageRequest => ({
      limit: count,
      ...(from === "" ? {} : { cursor: from }),
      ...(page.scanBudget === undefined ? {} : { scanBudget: page.scanBudget }),
    });

    // Redis: deliveries created at or after the horizon
    let redisItems: DeliverySummary[] = [];
    let redisNext: string | null = null;
    if (cursor.r !== null) {
      const redisPage = await listDeliveriesAcross(redis, filter, redisRequest(cursor.r, limit), partitions);
      redisItems = redisPage.items.filter((item) => Date.parse(item.createdAt) >= horizon);
      redisNext = redisItems.length < redisPage.items.length ? null : (redisPage.nextCursor ?? null);
    }

    // the store: what Redis does not list
    let candidates: ArchivedSummary[] = [];
    let frontier: ArchiveKey | undefined;
    let storeExhausted = true;
    if (cursor.a !== null) {
      const rows = await store.list(filter, limit, cursor.a === "" ? undefined : cursor.a);
      storeExhausted = rows.length < limit;
      frontier = rows.at(-1)?.key;
      // newer than the last delivery shown: shown already (it was in Redis then, archived since)
      const unseen = cursor.t === null ? rows : rows.filter((row) => row.key.createdAt <= cursor.t!);
      candidates = await this.#notListedByRedis(unseen, horizon, filter);
    }

    // merge, newest first; a side with more beyond its page bounds what the other may show
    const items: DeliverySummary[] = [];
    let taken = 0;
    let archivedTaken = 0;
    while (items.length < limit) {
      const fromRedis = redisItems[taken];
      const fromStore = candidates[archivedTaken];
      if (!fromRedis && !fromStore) break;
      if (!fromRedis && redisNext !== null) break;
      if (!fromStore && !storeExhausted && fromRedis && frontier) {
        if (Date.parse(fromRedis.createdAt) < frontier.createdAt) break;
      }
      if (fromRedis && (!fromStore || fromRedis.createdAt >= fromStore.summary.createdAt)) {
        items.push(fromRedis);
        taken++;
      } else if (fromStore) {
        items.push(fromStore.summary);
        archivedTaken++;
      }
    }

    let nextRedis: string | null;
    if (cursor.r === null || taken === redisItems.length) nextRedis = cursor.r === null ? null : redisNext;
    else if (taken === 0) nextRedis = cursor.r;
    else
      nextRedis =
        (await listDeliveriesAcross(redis, filter, redisRequest(cursor.r, taken), partitions)).nextCursor ??
        null;
    let nextArchive: ArchiveKey | "" | null;
    if (cursor.a === null) nextArchive = null;
    else if (archivedTaken === candidates.length) nextArchive = storeExhausted ? null : (frontier ?? null);
    else if (archivedTaken === 0) nextArchive = cursor.a;
    else nextArchive = candidates[archivedTaken - 1]!.key;

    if (nextRedis === null && nextArchive === null) return { items };
    const last = items.at(-1);
    const t = last === undefined ? cursor.t : Date.parse(last.createdAt);
    return { items, nextCursor: encodeCursor({ r: nextRedis, a: nextArchive, t }) };
  }

  /** The store's rows Redis does not list (see above), in their Redis state when Redis has one. */
  async #notListedByRedis(
    rows: ArchivedSummary[],
    horizon: number,
    filter: DeliveryFilter,
  ): Promise<ArchivedSummary[]> {
    const { redis, partitions } = this.#options;
    if (rows.length === 0) return [];
    const pipeline = redis.pipeline();
    for (const { summary } of rows)
      for (const keys of partitions.all) pipeline.exists(keys.delivery(summary.id));
    const replies = (await pipeline.exec()) ?? [];
    const count = partitions.all.length;
    const out: ArchivedSummary[] = [];
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      let inRedis = false;
      for (let j = 0; j < count; j++) if (Number(replies[i * count + j]?.[1] ?? 0) > 0) inRedis = true;
      if (!inRedis) {
        out.push(row);
        continue;
      }
      if (row.key.createdAt >= horizon) continue; // Redis lists it
      const live = await readDeliveryAcross(redis, row.summary.id, partitions);
      // Redis's record of a later delivery with the same id (its event id seen again after the
      // idempotency window) is another delivery: the row stands for itself
      if (live === null || Date.parse(live.createdAt) !== row.key.createdAt) out.push(row);
      else {
        const summary = summaryOf(live);
        if (matchesFilter(summary, filter)) out.push({ summary, key: row.key });
      }
    }
    return out;
  }

  /**
   * The record: Redis's while it has one (fresher), else the store's. With `namespace` (a caller
   * confined to it), another namespace's record is as absent as one never made, and it takes as
   * long: the store is asked either way, so a caller cannot time which ids Redis holds elsewhere.
   */
  async read(id: string, namespace?: string): Promise<DeliveryRecord | null> {
    const { redis, partitions, store } = this.#options;
    const live = await readDeliveryAcross(redis, id, partitions);
    if (live !== null && (namespace === undefined || live.namespace === namespace)) return live;
    const archived = (await store.get(id))?.record ?? null;
    return namespace === undefined || archived?.namespace === namespace ? archived : null;
  }

  /**
   * An event: Redis's record while it has one, else built from the store's rows of its deliveries
   * (once they are archived the record lives only for the idempotency window, the rows for the
   * retention). Redis's delivery records are not read: the view takes of a delivery only what never
   * changes (its id and its event's type, times and data), so its row is as good as its record.
   */
  async readEvent(namespace: string, id: string): Promise<EventRecord | null> {
    const { redis, partitions, store } = this.#options;
    const live = await readEventAcross(redis, namespace, id, partitions);
    if (live !== null) return live;
    return eventOfDeliveries(namespace, id, await store.eventDeliveries(namespace, id));
  }

  /**
   * Retry: in Redis as ever; a FAILED delivery that only the store still has is brought back into
   * Redis first (its record, payload inline, and its honoured tokens: a token is still honoured
   * once), then requeued by the same retry script.
   */
  async retry(id: string, token: string, scope: RetryScope): Promise<{ outcome: RetryOutcome }> {
    const { redis, partitions, store, limits } = this.#options;
    const inRedis = await requestRetryAcross(redis, id, token, partitions, limits, scope);
    if (inRedis.outcome !== "not-found") return inRedis;
    const archived = await store.get(id);
    if (archived === null) return { outcome: "not-found" };
    const { record } = archived;
    if (scope !== "any-namespace" && record.namespace !== scope.namespace) return { outcome: "not-found" };
    const keys = partitions.of(record.namespace);
    const restored = await restoreForRetry(redis, keys, archived, token, ["FAILED"], limits.retentionMs);
    if (restored !== "restored") return { outcome: restored };
    return requestRetry(redis, id, token, keys, limits, scope);
  }

  /**
   * Retry by filter: the FAILED deliveries it selects, newest first, up to `limit`, from Redis and
   * the store alike (the merged listing), each retried as `retry` does (one only the store has is
   * brought back first). The ids are taken before any is requeued, so none is counted twice.
   */
  async retryFailed(
    filter: Omit<DeliveryFilter, "phase">,
    token: string,
    limit: number,
    scope: RetryScope,
  ): Promise<BulkRetryCounts> {
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const pageLimit = Math.min(limit - ids.length, 200);
      const page = await this.list(
        { ...filter, phase: "FAILED" },
        cursor === undefined ? { limit: pageLimit } : { limit: pageLimit, cursor },
      );
      for (const item of page.items) ids.push(item.id);
      cursor = page.nextCursor;
    } while (cursor !== undefined && ids.length < limit);
    const counts: BulkRetryCounts = { requeued: 0, alreadyHonoured: 0, notFailed: 0, notFound: 0 };
    for (const id of ids) {
      const { outcome } = await this.retry(id, token, scope);
      if (outcome === "requeued") counts.requeued++;
      else if (outcome === "already-honoured") counts.alreadyHonoured++;
      else if (outcome === "not-failed") counts.notFailed++;
      else counts.notFound++;
    }
    return counts;
  }
}

/**
 * A retry (or a replay) with `token` of a delivery only the store has: already honoured (the
 * archived record holds the token; a token is honoured once, so it is not brought back), refused
 * (a phase not in `phases`), or brought back into Redis for `ttlMs`, for the retry script to
 * requeue as any other.
 */
export async function restoreForRetry(
  redis: RedisClient,
  keys: Keyspace,
  archived: ArchivedDelivery,
  token: string,
  phases: readonly string[],
  ttlMs: number,
): Promise<"already-honoured" | "not-failed" | "restored"> {
  if (archived.retryTokens.includes(token)) return "already-honoured";
  if (!phases.includes(archived.record.phase)) return "not-failed";
  await restoreIntoRedis(redis, keys, archived, ttlMs);
  return "restored";
}

/**
 * Writes an archived delivery back into Redis for `ttlMs` unless Redis has a record with its id
 * (then false): a retry or a replay requeues it there as any other (for the log's retention), the
 * WebhookEvent mirror reads its final state (for the hot window: with `statusEntry`, its status
 * entry is appended too, in the same step).
 */
export async function restoreIntoRedis(
  redis: RedisClient,
  keys: Keyspace,
  archived: ArchivedDelivery,
  ttlMs: number,
  statusEntry?: Pick<RecordLimits, "statusStreamMaxLen">,
): Promise<boolean> {
  const written = await runScript(
    redis,
    restoreDeliveryScript,
    [keys.deliveries, keys.status],
    [
      keys.prefix,
      archived.record.id,
      restoredRecord(archived),
      ttlMs,
      ...(statusEntry === undefined ? [] : [statusEntry.statusStreamMaxLen, archived.record.updatedAt]),
    ],
  );
  return Number(written) === 1;
}

/**
 * The event record as Redis showed it, from the records of its deliveries (null: none). Only the
 * fan-out's own deliveries, as in the event record: a WebhookReplay's copies have other ids. An
 * event id made again after its window has rows of each time: the latest (its ingest time) is the
 * one Redis showed last. The fan-out made them in the routing's order of webhooks, by name (the
 * operator sorts them).
 */
export function eventOfDeliveries(
  namespace: string,
  id: string,
  records: readonly DeliveryRecord[],
): EventRecord | null {
  const own = records.filter((record) => record.id === deliveryId(namespace, id, record.webhook));
  const latest = own.reduce<string | undefined>(
    (last, record) => (last === undefined || record.ingestedAt > last ? record.ingestedAt : last),
    undefined,
  );
  const deliveries = own
    .filter((record) => record.ingestedAt === latest)
    .sort((a, b) => a.webhook.localeCompare(b.webhook));
  const first = deliveries[0];
  if (first === undefined) return null;
  const { eventType: type, occurredAt, webhook } = first;
  // the data's own bytes, cut out of the body; a body of another shape (an older version's) is
  // parsed instead: the same data, its JSON spelled anew
  const data =
    notificationData({ eventId: id, type, occurredAt, namespace, webhook }, first.payload) ??
    dataOfBody(first.payload);
  if (data === undefined) throw new Error(`the payload of delivery ${first.id} is not a notification's`);
  return EventRecordSchema.parse({
    id,
    type,
    namespace,
    occurredAt,
    ingestedAt: first.ingestedAt,
    data,
    routing: "routed", // it has deliveries
    deliveryIds: deliveries.map((record) => record.id),
  });
}

/** The packed Redis record of an archived delivery, its payload inline (no event record needed). */
export function restoredRecord({ record, retryTokens }: ArchivedDelivery): string {
  return packDelivery(
    {
      format: DELIVERY_FORMAT,
      phase: record.phase,
      version: record.version,
      attemptCount: record.attempts.at(-1)?.number ?? 0,
      maxAttempts: record.maxAttempts,
      cycle: record.cycle,
      cycleAttempts: record.cycleAttempts,
      createdAt: Date.parse(record.createdAt),
      updatedAt: Date.parse(record.updatedAt),
      eventId: record.eventId,
      namespace: record.namespace,
      webhook: record.webhook,
      webhookUid: record.webhookUid,
      eventType: record.eventType,
      url: record.url,
      routingRevision: undefined,
      nextAttemptAt: undefined,
      failureReason: record.failureReason,
      retryTokens,
      mirrorError: record.mirrorError,
      occurredAt: record.occurredAt,
      ingestedAt: Date.parse(record.ingestedAt),
      data: undefined,
      payload: record.payload,
      // a retry of it takes its turn in its ordered webhook's queue, as one Redis still had would
      ordered: record.ordered,
    },
    record.attempts,
  );
}

export function summaryOf(record: DeliveryRecord): DeliverySummary {
  const summary: DeliverySummary = {
    id: record.id,
    eventId: record.eventId,
    eventType: record.eventType,
    namespace: record.namespace,
    webhook: record.webhook,
    url: record.url,
    phase: record.phase,
    attempts: record.attempts.at(-1)?.number ?? 0,
    maxAttempts: record.maxAttempts,
    cycle: record.cycle,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
  if (record.nextAttemptAt && record.phase === "QUEUED") summary.nextAttemptAt = record.nextAttemptAt;
  if (record.failureReason && record.phase === "FAILED") summary.failureReason = record.failureReason;
  return summary;
}

// ── cursors: "A" + base64url(JSON [redis cursor, store key, time of the last delivery shown]);
// "" = from the newest, null = done

const CURSOR_PREFIX = "A";
/** Epoch ms a Date can hold (±8.64e15): a larger one in a crafted cursor is a bad cursor, not a store failure. */
const CursorTime = z.number().int().nonnegative().max(8.64e15);
const CursorSchema = z.tuple([
  z.string().nullable(),
  z.union([z.literal(""), z.null(), z.tuple([CursorTime, z.string().min(1)])]),
  CursorTime.nullable(),
]);

interface Cursor {
  r: string | null;
  a: ArchiveKey | "" | null;
  /** epoch ms of the last delivery shown (null: none yet) */
  t: number | null;
}

function encodeCursor({ r, a, t }: Cursor): string {
  const archive = a === null || a === "" ? a : [a.createdAt, a.id];
  return `${CURSOR_PREFIX}${Buffer.from(JSON.stringify([r, archive, t])).toString("base64url")}`;
}

function decodeCursor(cursor: string): Cursor {
  if (cursor.startsWith(CURSOR_PREFIX)) {
    try {
      const parsed = CursorSchema.safeParse(
        JSON.parse(Buffer.from(cursor.slice(CURSOR_PREFIX.length), "base64url").toString()),
      );
      if (parsed.success) {
        const [r, a, t] = parsed.data;
        return { r, a: a === null || a === "" ? a : { createdAt: a[0], id: a[1] }, t };
      }
    } catch {
      // refused below
    }
  }
  throw new InvalidCursorError("invalid cursor");
}

/** The `data` of a notification body, as JSON; undefined when the body is not one. */
function dataOfBody(payload: string): string | undefined {
  try {
    const body: unknown = JSON.parse(payload);
    if (typeof body !== "object" || body === null || !("data" in body)) return undefined;
    return JSON.stringify(body.data);
  } catch {
    return undefined;
  }
}
