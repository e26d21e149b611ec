import { readRawDeliveries } from "./deliveries.ts";
import type { EventType } from "./event-types.ts";
import type { Keyspace } from "./keys.ts";
import {
  type DeliveryPhase,
  type FailureReason,
  STORED_DELIVERY_FIELDS,
  type StoredDelivery,
  unescapeField,
} from "./records.ts";
import type { RedisClient } from "./redis-client.ts";

// The event log's list view. Deliveries are indexed by creation time: streams of all of them,
// per namespace and per webhook (entry id = creation time), and a sorted set of FAILED ones (a
// retry takes one out again); the sorted sets that format 1 kept for the first three are read
// beside the streams until retention has emptied them. A listing walks the smallest index that
// covers the filter, newest first — its stream and its format 1 sorted set merged by time — and
// checks the remaining conditions on the records. The cursor names that index and where the walk
// stopped in each of its parts.

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

/** One key of an index: a stream (entry id = creation time) or a sorted set (score = creation time). */
export interface IndexPart {
  kind: "stream" | "zset";
  key: string;
}

export interface LogIndex {
  name: "webhook" | "namespace" | "failed" | "all";
  /** the stream first: at equal times its entries come first */
  parts: IndexPart[];
}

export async function listDeliveries(
  redis: RedisClient,
  filter: DeliveryFilter,
  page: PageRequest,
  keys: Keyspace,
): Promise<DeliveryPage> {
  const cursor = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  const candidates = indexCandidates(filter, keys);
  const index =
    candidates.find((candidate) => candidate.name === cursor?.index) ??
    (await smallestIndex(redis, candidates));
  const walk = new IndexWalk(
    redis,
    index,
    index.parts.map((part, i) => cursor?.positions?.[i] ?? legacyPosition(part, cursor?.legacy)),
  );
  const scanBudget = page.scanBudget ?? Math.max(1_000, page.limit * 10);
  // twice the page at first; then, while a filter on the records keeps the page short, chunks
  // twice as large each time (fewer round trips through a long stretch that does not match)
  let chunkSize = Math.min(500, Math.max(page.limit * 2, 20));
  const items: DeliverySummary[] = [];
  const seen = new Set<string>();
  let examined = 0;

  while (items.length < page.limit && examined < scanBudget) {
    const entries = await walk.next(Math.min(chunkSize, scanBudget - examined));
    chunkSize = Math.min(500, chunkSize * 2);
    if (entries.length === 0) return { items };
    const replies = await readRawDeliveries(
      redis,
      entries.map((entry) => entry.id),
      keys,
      "summary",
    );
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      examined++;
      walk.consume(entry);
      const summary = toSummary(entry.id, replies[i] ?? null);
      // an entry older than its record was left by an earlier delivery with the same id (an
      // event id seen again after the idempotency window): the record has a newer entry
      const current = summary !== null && Date.parse(summary.createdAt) <= entry.time;
      if (summary && current && !seen.has(summary.id) && matchesFilter(summary, filter)) {
        seen.add(summary.id);
        items.push(summary);
        if (items.length === page.limit) break;
      }
    }
  }
  return { items, nextCursor: encodeCursor({ index: index.name, positions: walk.positions() }) };
}

export function indexCandidates(filter: DeliveryFilter, keys: Keyspace): LogIndex[] {
  const stream = (key: string): IndexPart => ({ kind: "stream", key });
  const zset = (key: string): IndexPart => ({ kind: "zset", key });
  const candidates: LogIndex[] = [];
  const { namespace, webhook } = filter;
  if (namespace !== undefined) {
    if (webhook !== undefined) {
      candidates.push({
        name: "webhook",
        parts: [
          stream(keys.logWebhook(namespace, webhook)),
          zset(keys.legacyLog.webhook(namespace, webhook)),
        ],
      });
    }
    candidates.push({
      name: "namespace",
      parts: [stream(keys.logNamespace(namespace)), zset(keys.legacyLog.namespace(namespace))],
    });
  }
  if (filter.phase === "FAILED") candidates.push({ name: "failed", parts: [zset(keys.logFailed)] });
  if (candidates.length === 0)
    candidates.push({ name: "all", parts: [stream(keys.logAll), zset(keys.legacyLog.all)] });
  return candidates;
}

async function smallestIndex(redis: RedisClient, candidates: LogIndex[]): Promise<LogIndex> {
  if (candidates.length === 1) return candidates[0]!;
  const pipeline = redis.pipeline();
  for (const { parts } of candidates) {
    for (const part of parts) {
      if (part.kind === "stream") pipeline.xlen(part.key);
      else pipeline.zcard(part.key);
    }
  }
  const counts = ((await pipeline.exec()) ?? []).map(([, count]) => Number(count));
  let at = 0;
  const sizes = candidates.map(({ parts }) => parts.reduce((sum) => sum + counts[at++]!, 0));
  let best = 0;
  for (let i = 1; i < candidates.length; i++) if (sizes[i]! < sizes[best]!) best = i;
  return candidates[best]!;
}

// ── walking an index ───────────────────────────────────────────────────────────────────────

/** An index entry: a delivery id at its creation time. */
interface Entry {
  id: string;
  /** epoch ms */
  time: number;
  /** the part it comes from */
  part: number;
  /** its position in that part, to resume after it */
  after: PartPosition;
}

/**
 * Where a walk goes on in one part of an index, newest first: in a stream, the end of the next
 * XREVRANGE (`+`, `(<entry id>`: after that entry, `<ms>`: from that time down); in a sorted set,
 * after a member, or from a time down (score ≤ `score`), or from the top (null).
 */
type PartPosition = string | { score: number; id?: string } | null;

interface PartState {
  part: IndexPart;
  position: PartPosition;
  /** fetched, not yet taken */
  buffer: Entry[];
  exhausted: boolean;
  /** where the next fetch starts: a stream's end argument, a sorted set's rank (null: not yet known) */
  nextStreamEnd: string;
  nextRank: number | null;
  consumed: boolean;
}

/** Merges the parts of an index by time, fetching each in chunks. */
class IndexWalk {
  readonly #redis: RedisClient;
  readonly #parts: PartState[];
  /** the time of the last entry consumed, and whether it came from a stream */
  #frontier: { time: number; fromStream: boolean } | undefined;

  constructor(redis: RedisClient, index: LogIndex, positions: PartPosition[]) {
    this.#redis = redis;
    this.#parts = index.parts.map((part, i) => {
      const position = positions[i] ?? null;
      return {
        part,
        position,
        buffer: [],
        exhausted: false,
        nextStreamEnd: typeof position === "string" ? position : "+",
        nextRank: null,
        consumed: false,
      };
    });
  }

  /** Up to `count` entries after the ones consumed, newest first; [] when every part is exhausted. */
  async next(count: number): Promise<Entry[]> {
    const out: Entry[] = [];
    while (out.length < count) {
      await this.#fill(count);
      let best: PartState | undefined;
      for (const state of this.#parts) {
        const head = state.buffer[0];
        if (head && (!best || head.time > best.buffer[0]!.time)) best = state;
      }
      if (!best) break;
      out.push(best.buffer.shift()!);
    }
    return out;
  }

  /** The entry was examined: the walk goes on after it. */
  consume(entry: Entry): void {
    const state = this.#parts[entry.part]!;
    state.position = entry.after;
    state.consumed = true;
    this.#frontier = { time: entry.time, fromStream: state.part.kind === "stream" };
  }

  /**
   * Where each part goes on. A part nothing was taken from goes on from the time of the last
   * entry taken (its entries newer than that were none, or arrived since: not shown on later pages).
   */
  positions(): PartPosition[] {
    const frontier = this.#frontier;
    return this.#parts.map((state) => {
      if (state.consumed || !frontier) return state.position;
      return state.part.kind === "stream" ? String(frontier.time) : { score: frontier.time };
    });
  }

  /** Fetches a chunk for every part whose buffer is empty (one round trip). */
  async #fill(count: number): Promise<void> {
    const empty = this.#parts.filter((state) => state.buffer.length === 0 && !state.exhausted);
    if (empty.length === 0) return;
    for (const state of empty) {
      if (state.part.kind === "zset" && state.nextRank === null)
        state.nextRank = await zsetStartRank(this.#redis, state.part.key, state.position);
    }
    const pipeline = this.#redis.pipeline();
    for (const state of empty) {
      if (state.part.kind === "stream")
        pipeline.xrevrange(state.part.key, state.nextStreamEnd, "-", "COUNT", count);
      else
        pipeline.zrange(
          state.part.key,
          state.nextRank!,
          String(state.nextRank! + count - 1),
          "REV",
          "WITHSCORES",
        );
    }
    const replies = (await pipeline.exec()) ?? [];
    empty.forEach((state, i) => {
      const [error, reply] = replies[i] ?? [new Error("no reply")];
      if (error) throw error;
      const part = this.#parts.indexOf(state);
      if (state.part.kind === "stream") {
        const entries = reply as Array<[string, string[]]>;
        for (const [streamId, fields] of entries) {
          state.buffer.push({
            id: fields[1] ?? "",
            time: streamIdTime(streamId),
            part,
            after: `(${streamId}`,
          });
        }
        const last = entries.at(-1);
        if (last) state.nextStreamEnd = `(${last[0]}`;
        if (entries.length < count) state.exhausted = true;
      } else {
        const flat = reply as string[];
        for (let j = 0; j + 1 < flat.length; j += 2) {
          const score = Number(flat[j + 1]);
          state.buffer.push({ id: flat[j]!, time: score, part, after: { score, id: flat[j]! } });
        }
        state.nextRank! += flat.length / 2;
        if (flat.length / 2 < count) state.exhausted = true;
      }
    });
  }
}

/** The rank a sorted set part goes on from (REV order). */
async function zsetStartRank(redis: RedisClient, key: string, position: PartPosition): Promise<number> {
  if (position === null || typeof position === "string") return 0;
  if (position.id !== undefined) {
    const rank = await redis.zrevrank(key, position.id);
    if (rank !== null) return rank + 1;
    return await redis.zcount(key, `(${position.score}`, "+inf");
  }
  // from a time down: every member with that score or less
  return await redis.zcount(key, `(${position.score}`, "+inf");
}

function streamIdTime(streamId: string): number {
  return Number(streamId.slice(0, streamId.indexOf("-")));
}

// ── cursors ────────────────────────────────────────────────────────────────────────────────

interface Cursor {
  index?: LogIndex["name"];
  positions?: PartPosition[];
  /** a cursor of format 1: the last delivery examined, whatever the index */
  legacy?: { score: number; id: string };
}

/** A cursor of format 1 says where to go on by the time and id of the last delivery examined. */
function legacyPosition(part: IndexPart, legacy: Cursor["legacy"]): PartPosition {
  if (!legacy) return part.kind === "stream" ? "+" : null;
  return part.kind === "stream" ? String(legacy.score) : legacy;
}

const CURSOR_VERSION = "2.";

function encodeCursor(cursor: Cursor): string {
  return `${CURSOR_VERSION}${Buffer.from(JSON.stringify([cursor.index, cursor.positions])).toString("base64url")}`;
}

export class InvalidCursorError extends Error {
  override readonly name = "InvalidCursorError";
}

function decodeCursor(cursor: string): Cursor {
  if (cursor.startsWith(CURSOR_VERSION)) {
    try {
      const [index, positions] = JSON.parse(
        Buffer.from(cursor.slice(CURSOR_VERSION.length), "base64url").toString(),
      ) as [LogIndex["name"], PartPosition[]];
      if (typeof index === "string" && Array.isArray(positions) && positions.every(isPosition))
        return { index, positions };
    } catch {
      // reported below
    }
    throw new InvalidCursorError("invalid cursor");
  }
  // format 1: base64url("<score>:<delivery id>")
  const text = Buffer.from(cursor, "base64url").toString();
  const separator = text.indexOf(":");
  const score = Number(text.slice(0, separator));
  const id = text.slice(separator + 1);
  if (separator < 1 || !Number.isFinite(score) || id === "") throw new InvalidCursorError("invalid cursor");
  return { legacy: { score, id } };
}

function isPosition(value: unknown): value is PartPosition {
  if (value === null) return true;
  if (typeof value === "string") return /^(\+|\(?\d+(-\d+)?)$/.test(value);
  if (typeof value !== "object") return false;
  const { score, id } = value as { score?: unknown; id?: unknown };
  return Number.isFinite(score) && (id === undefined || typeof id === "string");
}

// ── records ────────────────────────────────────────────────────────────────────────────────

/** Positions of a packed record's first-line fields (the listing reads them without the schema). */
const FIELD = Object.fromEntries(STORED_DELIVERY_FIELDS.map((field, i) => [field, i])) as Record<
  keyof StoredDelivery,
  number
>;

/** A listing's view of a record as read-deliveries returns it in `summary` mode (null: none). */
function toSummary(id: string, reply: Array<string | null> | null): DeliverySummary | null {
  if (!reply) return null; // expired meanwhile
  let field: (name: keyof StoredDelivery) => string | undefined;
  if (reply[0] === "2") {
    const values = (reply[1] ?? "").split("\t");
    field = (name) => {
      const value = values[FIELD[name]];
      return value === "" ? undefined : value;
    };
  } else {
    const hash = new Map<string, string>();
    for (let i = 1; i + 1 < reply.length; i += 2) hash.set(reply[i]!, reply[i + 1]!);
    field = (name) => hash.get(name) || undefined;
  }
  const phase = field("phase") as DeliveryPhase | undefined;
  const createdAt = field("createdAt");
  const updatedAt = field("updatedAt");
  if (!phase || !createdAt || !updatedAt) return null;
  const text = (name: keyof StoredDelivery) => {
    const value = field(name) ?? "";
    return reply[0] === "2" ? unescapeField(value) : value;
  };
  const summary: DeliverySummary = {
    id,
    eventId: text("eventId"),
    eventType: text("eventType"),
    namespace: text("namespace"),
    webhook: text("webhook"),
    url: text("url"),
    phase,
    attempts: Number(field("attemptCount") ?? 0),
    maxAttempts: Number(field("maxAttempts") ?? 0),
    cycle: Number(field("cycle") ?? 1),
    createdAt: new Date(Number(createdAt)).toISOString(),
    updatedAt: new Date(Number(updatedAt)).toISOString(),
  };
  const nextAttemptAt = field("nextAttemptAt");
  if (nextAttemptAt && phase === "QUEUED")
    summary.nextAttemptAt = new Date(Number(nextAttemptAt)).toISOString();
  const failureReason = field("failureReason");
  if (failureReason && phase === "FAILED") summary.failureReason = failureReason as FailureReason;
  return summary;
}

/** Whether a delivery is one the filter asks for (the log's listings and the durable store's). */
export function matchesFilter(summary: DeliverySummary, filter: DeliveryFilter): boolean {
  return (
    (filter.namespace === undefined || summary.namespace === filter.namespace) &&
    (filter.webhook === undefined || summary.webhook === filter.webhook) &&
    (filter.eventType === undefined || summary.eventType === filter.eventType) &&
    (filter.phase === undefined || summary.phase === filter.phase)
  );
}
