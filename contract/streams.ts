import type { Redis } from "ioredis";

// Consumer-group plumbing shared by the fan-out and delivery workers.

export interface StreamEntry {
  id: string;
  fields: string[];
}

/** Creates the group at the start of the stream (entries written before any dispatcher count). */
export async function ensureConsumerGroup(redis: Redis, stream: string, group: string): Promise<void> {
  try {
    await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM");
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith("BUSYGROUP"))) throw error;
  }
}

/** Reads new entries for this consumer; [] when none arrived within `blockMs`. */
export async function readGroup(
  redis: Redis,
  stream: string,
  group: string,
  consumer: string,
  count: number,
  blockMs: number,
): Promise<StreamEntry[]> {
  const reply = (await redis.xreadgroup(
    "GROUP",
    group,
    consumer,
    "COUNT",
    count,
    "BLOCK",
    blockMs,
    "STREAMS",
    stream,
    ">",
  )) as Array<[string, Array<[string, string[]]>]> | null;
  return toEntries(reply?.[0]?.[1]);
}

export interface Claimed {
  entries: StreamEntry[];
  /** Pending entries whose stream entry was trimmed away: acknowledge them. */
  deleted: string[];
  cursor: string;
}

/** Takes over entries another consumer left unacknowledged for `minIdleMs` (XAUTOCLAIM). */
export async function claimIdle(
  redis: Redis,
  stream: string,
  group: string,
  consumer: string,
  minIdleMs: number,
  cursor: string,
  count: number,
): Promise<Claimed> {
  const [next, entries, deleted] = (await redis.xautoclaim(
    stream,
    group,
    consumer,
    minIdleMs,
    cursor,
    "COUNT",
    count,
  )) as [string, Array<[string, string[]] | null>, string[] | undefined];
  return { cursor: next, entries: toEntries(entries), deleted: deleted ?? [] };
}

/** Resets the idle time of entries this consumer is still working on, so nobody claims them. */
export async function renewClaims(
  redis: Redis,
  stream: string,
  group: string,
  consumer: string,
  ids: readonly string[],
): Promise<void> {
  if (ids.length === 0) return;
  await redis.xclaim(stream, group, consumer, 0, ...ids, "JUSTID");
}

function toEntries(raw: Array<[string, string[]] | null> | undefined): StreamEntry[] {
  const entries: StreamEntry[] = [];
  for (const item of raw ?? []) {
    if (item !== null && item[1] !== null) entries.push({ id: item[0], fields: item[1] });
  }
  return entries;
}

/**
 * Trims entries that every group has read and acknowledged: below both the oldest pending entry
 * and the last entry delivered to each group. Never drops unread or unacknowledged work.
 */
export async function trimAcknowledged(redis: Redis, stream: string): Promise<void> {
  let groups: unknown[];
  try {
    groups = (await redis.xinfo("GROUPS", stream)) as unknown[];
  } catch {
    return; // no stream yet
  }
  if (groups.length === 0) return;
  let floor: string | undefined;
  for (const raw of groups) {
    const group = flatToObject(raw as unknown[]);
    const name = String(group.name);
    const lastDelivered = String(group["last-delivered-id"]);
    floor = minId(floor, lastDelivered);
    const pending = (await redis.xpending(stream, name)) as [number, string | null, string | null, unknown];
    if (pending[0] > 0 && pending[1]) floor = minId(floor, pending[1]);
  }
  if (floor !== undefined && floor !== "0-0") await redis.xtrim(stream, "MINID", "~", floor);
}

/** Removes consumers that hold nothing and were idle longer than `idleMs` (replicas long gone). */
export async function removeIdleConsumers(
  redis: Redis,
  stream: string,
  group: string,
  idleMs: number,
): Promise<number> {
  let consumers: unknown[];
  try {
    consumers = (await redis.xinfo("CONSUMERS", stream, group)) as unknown[];
  } catch {
    return 0;
  }
  let removed = 0;
  for (const raw of consumers) {
    const consumer = flatToObject(raw as unknown[]);
    if (Number(consumer.pending) === 0 && Number(consumer.idle) > idleMs) {
      await redis.xgroup("DELCONSUMER", stream, group, String(consumer.name));
      removed++;
    }
  }
  return removed;
}

export async function pendingCount(redis: Redis, stream: string, group: string): Promise<number> {
  try {
    const pending = (await redis.xpending(stream, group)) as [number, ...unknown[]];
    return Number(pending[0]);
  } catch {
    return 0;
  }
}

function flatToObject(flat: unknown[]): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) result[String(flat[i])] = flat[i + 1];
  return result;
}

/** The smaller of two stream ids (`ms-seq`). */
export function minId(a: string | undefined, b: string): string {
  if (a === undefined) return b;
  return compareIds(a, b) <= 0 ? a : b;
}

export function compareIds(a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split("-").map(Number);
  const [bMs = 0, bSeq = 0] = b.split("-").map(Number);
  return aMs - bMs || aSeq - bSeq;
}

/** The epoch ms encoded in a stream entry id (the time Redis appended it). */
export function entryTime(id: string): number {
  return Number(id.slice(0, id.indexOf("-")));
}
