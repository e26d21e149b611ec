import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CONSUMER_GROUPS, keyspace } from "../contract/keys.ts";
import { readRecordLimits } from "../contract/record-limits.ts";
import { ensureConsumerGroup, StreamConsumer } from "../contract/streams/stream-consumer.ts";
import { uniqueKeyTag } from "../test/support/fixtures.ts";
import { Maintenance } from "./maintenance.ts";
import { createMetrics } from "./metrics.ts";

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

function maintenance(keys: ReturnType<typeof keyspace>, retentionMs: number) {
  return new Maintenance({
    redis,
    keys,
    limits: { retentionMs, statusStreamMaxLen: 1000 },
    intervalMs: 60_000,
    deadConsumerIdleMs: 50,
    metrics: createMetrics(async () => null),
    logger: pino({ level: "silent" }),
  });
}

/** Reads `count` work entries as `consumer` of the delivery group. */
function readAs(keys: ReturnType<typeof keyspace>, consumer: string, count: number) {
  const stream = keys.deliveries;
  const group = CONSUMER_GROUPS.delivery;
  const options = { redis, reader: redis, stream, group, consumer, name: "test", onError() {} };
  return new StreamConsumer(options).read(count, 10);
}

describe("maintenance", () => {
  it("trims acknowledged work but never pending or unread entries", async () => {
    const keys = keyspace(uniqueKeyTag());
    await ensureConsumerGroup(redis, keys.deliveries, CONSUMER_GROUPS.delivery);
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push((await redis.xadd(keys.deliveries, "*", "id", `d-${i}`))!);
    const read = await readAs(keys, "c1", 250);
    // acknowledge all read entries but #100, which stays pending; #250..299 are unread
    await redis.xack(
      keys.deliveries,
      CONSUMER_GROUPS.delivery,
      ...read.map((e) => e.id).filter((_, i) => i !== 100),
    );
    await maintenance(keys, 60_000).runOnce();
    const left = (await redis.xrange(keys.deliveries, "-", "+")).map(([id]) => id);
    expect(left).toContain(ids[100]);
    expect(left).toEqual(expect.arrayContaining(ids.slice(250)));
    expect(left.length).toBeLessThan(300);
  });

  it("trims all acknowledged work in one round, past XTRIM's per-call limit of 10,000 entries", async () => {
    // An approximate XTRIM removes at most 100 macro nodes (10,000 entries) per call: with one
    // call per round, work beyond ~1,000 deliveries/s per trimming replica piled up.
    const keys = keyspace(uniqueKeyTag());
    await ensureConsumerGroup(redis, keys.deliveries, CONSUMER_GROUPS.delivery);
    const total = 35_000;
    for (let start = 0; start < total; start += 5_000) {
      const batch = redis.pipeline();
      for (let i = start; i < start + 5_000; i++) batch.xadd(keys.deliveries, "*", "id", `d-${i}`);
      await batch.exec();
    }
    // Delivered to the group and acknowledged: move the group's cursor past everything.
    await redis.xgroup("SETID", keys.deliveries, CONSUMER_GROUPS.delivery, "$");
    await maintenance(keys, 60_000).runOnce();
    // What stays is at most the last macro node (100 entries by default) that holds the floor.
    expect(await redis.xlen(keys.deliveries)).toBeLessThanOrEqual(200);
  });

  it("drops event log index entries past retention and forgets empty indexes", async () => {
    const keys = keyspace(uniqueKeyTag());
    const old = Date.now() - 10_000;
    await redis.xadd(keys.logAll, `${old}-0`, "d", "old");
    await redis.xadd(keys.logAll, `${Date.now()}-0`, "d", "new");
    await redis.xadd(keys.logNamespace("ns"), `${old}-0`, "d", "old");
    await redis.xadd(keys.logWebhook("ns", "w"), `${old}-0`, "d", "old");
    await redis.xadd(keys.logWebhook("ns", "w"), `${Date.now()}-0`, "d", "new");
    await redis.sadd(keys.logIndexes, keys.logNamespace("ns"), keys.logWebhook("ns", "w"));
    await redis.zadd(keys.logFailed, old, "old", Date.now(), "new");
    await maintenance(keys, 5_000).runOnce();
    const ids = async (key: string) => (await redis.xrange(key, "-", "+")).map(([, [, id]]) => id);
    expect(await ids(keys.logAll)).toEqual(["new"]);
    expect(await ids(keys.logWebhook("ns", "w"))).toEqual(["new"]);
    expect(await redis.exists(keys.logNamespace("ns"))).toBe(0);
    expect(await redis.smembers(keys.logIndexes)).toEqual([keys.logWebhook("ns", "w")]);
    expect(await redis.zrange(keys.logFailed, 0, "-1")).toEqual(["new"]);
  });

  it("trims the indexes of format 1 (sorted sets) alike, until they are gone", async () => {
    const keys = keyspace(uniqueKeyTag());
    const old = Date.now() - 10_000;
    await redis.zadd(keys.legacyLog.all, old, "old", Date.now(), "new");
    await redis.zadd(keys.legacyLog.namespace("ns"), old, "old");
    await redis.sadd(keys.legacyLog.indexes, keys.legacyLog.namespace("ns"));
    await maintenance(keys, 5_000).runOnce();
    expect(await redis.zrange(keys.legacyLog.all, 0, "-1")).toEqual(["new"]);
    expect(await redis.exists(keys.legacyLog.namespace("ns"))).toBe(0);
    expect(await redis.smembers(keys.legacyLog.indexes)).toEqual([]);
  });

  it("keeps the index entries created at the horizon itself: only those before it go", async () => {
    // the archive horizon sits at the creation time of the oldest delivery not yet archived, which
    // every delivery of its fan-out shares: those are listed by Redis, so their entries must stay
    const keys = keyspace(uniqueKeyTag());
    const horizon = Date.now() - 10_000;
    await redis.xadd(keys.logAll, `${horizon - 1}-0`, "d", "before");
    await redis.xadd(keys.logAll, `${horizon}-0`, "d", "at");
    await redis.zadd(keys.logFailed, horizon - 1, "before", horizon, "at");
    await redis.zadd(keys.legacyLog.all, horizon - 1, "before", horizon, "at");
    await redis.zadd(keys.legacyLog.namespace("ns"), horizon - 1, "before", horizon, "at");
    await redis.sadd(keys.legacyLog.indexes, keys.legacyLog.namespace("ns"));
    const round = new Maintenance({
      redis,
      keys,
      limits: { retentionMs: 60_000, statusStreamMaxLen: 1000 },
      intervalMs: 60_000,
      indexHorizon: async () => horizon,
      metrics: createMetrics(async () => null),
      logger: pino({ level: "silent" }),
    });
    await round.runOnce();
    expect((await redis.xrange(keys.logAll, "-", "+")).map(([, [, id]]) => id)).toEqual(["at"]);
    for (const index of [keys.logFailed, keys.legacyLog.all, keys.legacyLog.namespace("ns")])
      expect(await redis.zrange(index, 0, "-1"), index).toEqual(["at"]);
  });

  it("forgets consumers of replicas long gone, but not those holding work", async () => {
    const keys = keyspace(uniqueKeyTag());
    await ensureConsumerGroup(redis, keys.deliveries, CONSUMER_GROUPS.delivery);
    await redis.xadd(keys.deliveries, "*", "id", "d-1");
    await readAs(keys, "holder", 1);
    await readAs(keys, "gone", 1); // nothing left: holds none
    await sleep(100);
    await maintenance(keys, 60_000).runOnce();
    const consumers = (await redis.xinfo(
      "CONSUMERS",
      keys.deliveries,
      CONSUMER_GROUPS.delivery,
    )) as string[][];
    expect(consumers.map((consumer) => consumer[1])).toEqual(["holder"]);
  });

  it("publishes the record limits again every round (Redis may have lost them)", async () => {
    const keys = keyspace(uniqueKeyTag());
    await maintenance(keys, 90_000).runOnce();
    expect(await readRecordLimits(redis, keys)).toEqual({ retentionMs: 90_000, statusStreamMaxLen: 1000 });
    await redis.del(keys.recordLimits);
    await maintenance(keys, 90_000).runOnce();
    expect(await readRecordLimits(redis, keys)).toEqual({ retentionMs: 90_000, statusStreamMaxLen: 1000 });
  });
});
