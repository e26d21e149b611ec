import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDelivery, failDelivery, TEST_FANOUT_LIMITS } from "../test/support/deliveries.ts";
import { uniqueKeyTag } from "../test/support/fixtures.ts";
import { addDeliveries, readDeliveries, readDelivery } from "./deliveries.ts";
import { type CopyTarget, copyDelivery } from "./delivery-copy.ts";
import { copyDeliveryId } from "./delivery-id.ts";
import { type Keyspace, keyspace } from "./keys.ts";

// A delivery copied to another webhook (a WebhookReplay's targetWebhook) through the contract's
// add-deliveries script: a new delivery of the same event, made once per id.

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

const SPARE: CopyTarget = {
  name: "spare",
  uid: "spare-uid",
  url: "https://spare.example/hook",
  ordered: false,
  maxAttempts: 5,
};

async function copyOf(keys: Keyspace, id: string, target: CopyTarget, token: string) {
  const [read] = await readDeliveries(redis, [id], keys);
  return copyDelivery(id, read!.view, target, token, Date.now());
}

async function workIds(keys: Keyspace): Promise<string[]> {
  return (await redis.xrange(keys.deliveries, "-", "+")).map(
    ([, fields]) => fields[fields.indexOf("id") + 1]!,
  );
}

describe("a delivery copied to another webhook", () => {
  it("is a new QUEUED delivery of the same event, to the target's URL, made once", async () => {
    const keys = keyspace(uniqueKeyTag());
    await createDelivery(redis, keys, "hook-1");
    await failDelivery(redis, keys, "hook-1");
    await redis.del(keys.deliveries);

    const copy = await copyOf(keys, "hook-1", SPARE, "replay:uid-1:1");
    expect(copy.id).toBe(copyDeliveryId("ns", "hook-1", "spare", "replay:uid-1:1"));
    expect(copy.id).toMatch(/^spare-[a-z2-7]{20}$/);
    expect(await addDeliveries(redis, [copy], TEST_FANOUT_LIMITS, keys)).toEqual(["c"]);
    // a page done twice, a crash between the copy and the status write: nothing more
    expect(await addDeliveries(redis, [copy], TEST_FANOUT_LIMITS, keys)).toEqual(["e"]);

    const made = await readDelivery(redis, copy.id, keys);
    const original = await readDelivery(redis, "hook-1", keys);
    expect(made).toMatchObject({
      phase: "QUEUED",
      webhook: "spare",
      webhookUid: "spare-uid",
      url: "https://spare.example/hook",
      eventId: original!.eventId,
      eventType: original!.eventType,
      maxAttempts: 5,
      cycleAttempts: 0,
      attempts: [],
      lastRetryToken: "replay:uid-1:1",
    });
    // the same event's body, naming the target webhook
    expect(JSON.parse(made!.payload)).toEqual({ ...JSON.parse(original!.payload), webhook: "spare" });
    // the original is untouched
    expect(original).toMatchObject({ phase: "FAILED", webhook: "hook" });
    // its work (once), its log index, its QUEUED status entry
    expect(await workIds(keys)).toEqual([copy.id]);
    const indexed = await redis.xrange(keys.logWebhook("ns", "spare"), "-", "+");
    expect(indexed.map(([, fields]) => fields[1])).toEqual([copy.id]);
    const status = await redis.xrevrange(keys.status, "+", "-", "COUNT", 1);
    expect(status[0]?.[1]).toEqual(expect.arrayContaining(["deliveryId", copy.id, "phase", "QUEUED"]));

    // another replay (token) makes another copy
    const again = await copyOf(keys, "hook-1", SPARE, "replay:uid-2:1");
    expect(again.id).not.toBe(copy.id);
    expect(await addDeliveries(redis, [again], TEST_FANOUT_LIMITS, keys)).toEqual(["c"]);
  });

  it("joins an ordered target's queue, with work only as its head", async () => {
    const keys = keyspace(uniqueKeyTag());
    for (const id of ["hook-a", "hook-b"]) {
      await createDelivery(redis, keys, id);
      await failDelivery(redis, keys, id);
    }
    await redis.del(keys.deliveries);
    const ordered = { ...SPARE, ordered: true };
    const copies = [await copyOf(keys, "hook-a", ordered, "t"), await copyOf(keys, "hook-b", ordered, "t")];
    expect(await addDeliveries(redis, copies, TEST_FANOUT_LIMITS, keys)).toEqual(["c", "c"]);
    expect(await redis.lrange(keys.orderedQueue("ns", "spare"), 0, -1)).toEqual(copies.map((c) => c.id));
    expect(await workIds(keys)).toEqual([copies[0]!.id]);
  });
});
