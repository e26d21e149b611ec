import type { Redis } from "ioredis";
import type { EventType } from "./event-types.ts";
import type { Keyspace } from "./keys.ts";
import type { DeliveryPhase, FailureReason } from "./records.ts";

// The event log's list view. Deliveries are indexed by creation time in sorted sets per
// namespace, webhook, event type, and FAILED ones once more (maintained by the scripts); a listing walks the
// smallest index that covers the filter, newest first, and checks the remaining conditions on
// the records. Cursors are positions in that walk (the last delivery examined).

export interface DeliveryFilter {
  namespace?: string;
  webhook?: string;
  eventType?: EventType;
  phase?: DeliveryPhase;
}

export interface DeliverySummary {
  id: string;
  eventId: string;
  eventType: string;
  namespace: string;
  webhook: string;
  url: string;
  phase: DeliveryPhase;
  attempts: number;
  maxAttempts: number;
  cycle: number;
  createdAt: string;
  updatedAt: string;
  nextAttemptAt?: string;
  failureReason?: FailureReason;
}

export interface DeliveryPage {
  items: DeliverySummary[];
  /** Pass back as `cursor` for the next page; absent on the last page. */
  nextCursor?: string;
}

export interface PageRequest {
  limit: number;
  cursor?: string;
  /** How many index entries one call may examine before it returns a short page (with a cursor). */
  scanBudget?: number;
}

const SUMMARY_FIELDS = [
  "id",
  "eventId",
  "eventType",
  "namespace",
  "webhook",
  "url",
  "phase",
  "attemptCount",
  "maxAttempts",
  "cycle",
  "createdAt",
  "updatedAt",
  "nextAttemptAt",
  "failureReason",
] as const;

export async function listDeliveries(
  redis: Redis,
  filter: DeliveryFilter,
  page: PageRequest,
  keys: Keyspace,
): Promise<DeliveryPage> {
  const index = await smallestIndex(redis, indexCandidates(filter, keys));
  const scanBudget = page.scanBudget ?? Math.max(1_000, page.limit * 10);
  let position = page.cursor ? await resumePosition(redis, index, decodeCursor(page.cursor)) : 0;
  const items: DeliverySummary[] = [];
  const seen = new Set<string>();
  let examined = 0;
  let last: Cursor | undefined;

  while (items.length < page.limit && examined < scanBudget) {
    const chunkSize = Math.min(500, Math.max(page.limit * 2, 20));
    const entries = await redis.zrange(
      index,
      position,
      String(position + chunkSize - 1),
      "REV",
      "WITHSCORES",
    );
    if (entries.length === 0) return { items };
    const ids: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i + 1 < entries.length; i += 2) {
      ids.push(entries[i]!);
      scores.push(Number(entries[i + 1]));
    }
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hmget(keys.delivery(id), ...SUMMARY_FIELDS);
    const replies = (await pipeline.exec()) ?? [];
    for (let i = 0; i < ids.length; i++) {
      examined++;
      position++;
      last = { score: scores[i]!, id: ids[i]! };
      const [error, values] = replies[i] ?? [];
      if (error) throw error;
      const summary = toSummary(values as Array<string | null>);
      if (summary && !seen.has(summary.id) && matches(summary, filter)) {
        seen.add(summary.id);
        items.push(summary);
        if (items.length === page.limit) break;
      }
    }
    if (entries.length < chunkSize * 2 && items.length < page.limit) return { items };
  }
  return last ? { items, nextCursor: encodeCursor(last) } : { items };
}

export function indexCandidates(filter: DeliveryFilter, keys: Keyspace): string[] {
  const candidates: string[] = [];
  if (filter.namespace !== undefined) {
    if (filter.webhook !== undefined) candidates.push(keys.logWebhook(filter.namespace, filter.webhook));
    candidates.push(keys.logNamespace(filter.namespace));
  }
  if (filter.phase === "FAILED") candidates.push(keys.logFailed);
  if (candidates.length === 0) candidates.push(keys.logAll);
  return candidates;
}

async function smallestIndex(redis: Redis, candidates: string[]): Promise<string> {
  if (candidates.length === 1) return candidates[0]!;
  const pipeline = redis.pipeline();
  for (const key of candidates) pipeline.zcard(key);
  const sizes = ((await pipeline.exec()) ?? []).map(([, size]) => Number(size));
  let best = 0;
  for (let i = 1; i < candidates.length; i++) if (sizes[i]! < sizes[best]!) best = i;
  return candidates[best]!;
}

interface Cursor {
  score: number;
  id: string;
}

/** The position just after the cursor's delivery; by score when it has left the index meanwhile. */
async function resumePosition(redis: Redis, index: string, cursor: Cursor): Promise<number> {
  const rank = await redis.zrevrank(index, cursor.id);
  if (rank !== null) return rank + 1;
  return await redis.zcount(index, `(${cursor.score}`, "+inf");
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.score}:${cursor.id}`).toString("base64url");
}

export class InvalidCursorError extends Error {
  override readonly name = "InvalidCursorError";
}

function decodeCursor(cursor: string): Cursor {
  const text = Buffer.from(cursor, "base64url").toString();
  const separator = text.indexOf(":");
  const score = Number(text.slice(0, separator));
  const id = text.slice(separator + 1);
  if (separator < 1 || !Number.isFinite(score) || id === "") throw new InvalidCursorError("invalid cursor");
  return { score, id };
}

function toSummary(values: Array<string | null>): DeliverySummary | null {
  const [
    id,
    eventId,
    eventType,
    namespace,
    webhook,
    url,
    phase,
    attemptCount,
    maxAttempts,
    cycle,
    createdAt,
    updatedAt,
    nextAttemptAt,
    failureReason,
  ] = values;
  if (!id || !phase || !createdAt || !updatedAt) return null; // expired meanwhile
  const summary: DeliverySummary = {
    id,
    eventId: eventId ?? "",
    eventType: eventType ?? "",
    namespace: namespace ?? "",
    webhook: webhook ?? "",
    url: url ?? "",
    phase: phase as DeliveryPhase,
    attempts: Number(attemptCount ?? 0),
    maxAttempts: Number(maxAttempts ?? 0),
    cycle: Number(cycle ?? 1),
    createdAt: new Date(Number(createdAt)).toISOString(),
    updatedAt: new Date(Number(updatedAt)).toISOString(),
  };
  if (nextAttemptAt && phase === "QUEUED")
    summary.nextAttemptAt = new Date(Number(nextAttemptAt)).toISOString();
  if (failureReason && phase === "FAILED") summary.failureReason = failureReason as FailureReason;
  return summary;
}

function matches(summary: DeliverySummary, filter: DeliveryFilter): boolean {
  return (
    (filter.namespace === undefined || summary.namespace === filter.namespace) &&
    (filter.webhook === undefined || summary.webhook === filter.webhook) &&
    (filter.eventType === undefined || summary.eventType === filter.eventType) &&
    (filter.phase === undefined || summary.phase === filter.phase)
  );
}
