import type { Redis } from "ioredis";

import { minId } from "./stream-ids.ts";

// Keeping the streams bounded: trimming what every group is done with, forgetting consumers of
// replicas long gone. Idempotent; any replica may run them.

/**
 * An approximate XTRIM removes at most 100 macro nodes (10,000 entries by default) per call, so
 * that one call never blocks Redis for long; a round repeats it until done, up to this many calls.
 */
const MAX_TRIM_CALLS_PER_ROUND = 100;

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
  if (floor === undefined || floor === "0-0") return;
  for (let call = 0; call < MAX_TRIM_CALLS_PER_ROUND; call++) {
    if ((await redis.xtrim(stream, "MINID", "~", floor)) === 0) return;
  }
}

/** Removes consumers (but `keep`) that hold nothing and were idle longer than `idleMs` (replicas long gone). */
export async function removeIdleConsumers(
  redis: Redis,
  stream: string,
  group: string,
  idleMs: number,
  keep?: string,
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
    if (consumer.name === keep) continue;
    if (Number(consumer.pending) === 0 && Number(consumer.idle) >= idleMs) {
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
