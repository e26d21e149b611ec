import { assertKeyTag, type Keyspace, keyspaceUnder } from "./keys.ts";

/**
 * The partitions of a deployment's keyspace, so that Redis Cluster can spread the data plane over
 * several masters. Each partition is a keyspace of its own hash tag — its streams, records and
 * indexes in one slot, which the atomic steps (Lua scripts over several keys) need — and holds the
 * namespaces that hash to it: an event, its deliveries, its idempotency marker and the namespace's
 * log indexes always share a slot. What is read into memory or written rarely stays global, in
 * partition 0: the routing (hash, revision, epoch, channel), the record limits and endpoint health.
 *
 * Spelling: partition 0 is `{<tag>}`, the keyspace of an unpartitioned deployment (one partition
 * is exactly the keys of before; a deployment that grows keeps its data in partition 0). Partition
 * i ≥ 1 is `{<tag>:<i>}`, or `{<tag>:<i>.<k>}` with the smallest k that puts it in its share of the
 * slots: the slot space is cut in `count` ranges the way `redis-cli --cluster create` cuts it
 * among masters, partition 0 keeps the range its tag falls in and the others take the next ones in
 * turn, so with as many partitions as masters (or a multiple) each master of a fresh cluster holds
 * its share. A key tag has no `:` (keys.ts), so `{<tag>:…}` never meets another installation's
 * keys, and the ACL patterns `{<tag>:*}` cover every partition of any count.
 *
 * Why by namespace, not by event id: a namespace's listing, its bulk retry and its idempotency
 * checks each touch one slot (one master) instead of all, and a retry through a WebhookEvent knows
 * its namespace. The cost: one namespace's traffic cannot use more than one master.
 */
export interface Partitions {
  /** how many; 1 is the unpartitioned keyspace */
  readonly count: number;
  /** every partition's keyspace, partition 0 first; the global keys (routing…) are partition 0's in each */
  readonly all: readonly Keyspace[];
  /** partition 0: the keys of an unpartitioned deployment, and the global ones */
  readonly global: Keyspace;
  /** the partition of a namespace's events, deliveries and log */
  of(namespace: string): Keyspace;
  /** its index in `all` */
  indexOf(namespace: string): number;
}

export const MAX_PARTITIONS = 64;

/** Redis Cluster's slot count. */
const SLOTS = 16_384;

export function partitionedKeyspace(tag: string, count = 1): Partitions {
  assertKeyTag(tag);
  if (!Number.isInteger(count) || count < 1 || count > MAX_PARTITIONS) {
    throw new Error(`invalid partition count ${count} (1..${MAX_PARTITIONS})`);
  }
  const global = keyspaceUnder(`{${tag}}:`);
  const shared = {
    routing: global.routing,
    recordLimits: global.recordLimits,
    endpointHealth: global.endpointHealth,
    routingRevision: global.routingRevision,
    routingEpoch: global.routingEpoch,
    routingChannel: global.routingChannel,
  };
  const all = partitionTags(tag, count).map((partitionTag, i) =>
    i === 0 ? global : { ...keyspaceUnder(`{${partitionTag}}:`), ...shared },
  );
  const indexOf = (namespace: string) => (count === 1 ? 0 : crc16(namespace) % count);
  return { count, all, global, of: (namespace) => all[indexOf(namespace)]!, indexOf };
}

/** The hash tag of each partition (see Partitions for the spelling). */
export function partitionTags(tag: string, count: number): string[] {
  const ranges = slotRanges(count);
  const rangeOf = (slot: number) => ranges.findIndex(([first, last]) => slot >= first && slot <= last);
  const home = rangeOf(keySlot(tag));
  const tags = [tag];
  for (let i = 1; i < count; i++) {
    const [first, last] = ranges[(home + i) % count]!;
    let candidate = `${tag}:${i}`;
    for (let k = 1; keySlot(candidate) < first || keySlot(candidate) > last; k++)
      candidate = `${tag}:${i}.${k}`;
    tags.push(candidate);
  }
  return tags;
}

/** The slot ranges `redis-cli --cluster create` gives `count` masters, first and last slot of each. */
export function slotRanges(count: number): Array<[number, number]> {
  const perNode = SLOTS / count;
  const ranges: Array<[number, number]> = [];
  let first = 0;
  let cursor = 0;
  for (let i = 0; i < count; i++) {
    let last = Math.round(cursor + perNode - 1);
    if (last > SLOTS || i === count - 1) last = SLOTS - 1;
    if (last < first) last = first;
    ranges.push([first, last]);
    first = last + 1;
    cursor += perNode;
  }
  return ranges;
}

/** The Redis Cluster slot of a key (its hash tag's, when it has one), as `CLUSTER KEYSLOT` says. */
export function keySlot(key: string): number {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) return crc16(key.slice(open + 1, close)) % SLOTS;
  }
  return crc16(key) % SLOTS;
}

/** CRC16-CCITT (XMODEM), the hash of Redis Cluster, over the UTF-8 bytes. */
export function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text, "utf8")) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** A keyspace as the only partition (tests, tools that hold one keyspace). */
export function onePartition(keys: Keyspace): Partitions {
  return { count: 1, all: [keys], global: keys, of: () => keys, indexOf: () => 0 };
}
