import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { failedAttempt, settle, TEST_FANOUT_LIMITS } from "../test/support/deliveries.ts";
import { uniqueKeyTag } from "../test/support/fixtures.ts";
import { fanoutEvents, readDelivery, requestRetry } from "./deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace, keyspace } from "./keys.ts";
import type { FanoutPlan } from "./scripts/fanout-events.ts";
import { healOrderedQueuesScript } from "./scripts/heal-ordered-queues.ts";
import { runScript } from "./scripts/script.ts";
import { ensureConsumerGroup } from "./streams/stream-consumer.ts";

// The ordered queue of a webhook (Keyspace.orderedQueue) on its own, through the contract's
// scripts: only its head ever has work; settling the head hands the turn on.

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

/** Fans out events `evt-<n>` for `n` of `numbers`, each to the ordered webhook "ord" and the unordered "free". */
async function fanout(keys: Keyspace, numbers: number[]): Promise<void> {
  await ensureConsumerGroup(redis, keys.events, CONSUMER_GROUPS.fanout);
  const plan: FanoutPlan = {
    invalid: [],
    events: numbers.map((n) => ({
      entryId: "",
      namespace: "ns",
      id: `evt-${n}`,
      type: "job.created",
      occurredAt: "2025-01-01T00:00:00.000Z",
      ingestedAt: Date.now(),
      data: "{}",
      routing: "routed",
      deliveries: [
        {
          id: `ord-${n}`,
          webhook: "ord",
          uid: "u",
          url: "https://a.example",
          payload: "{}",
          maxAttempts: 2,
          ordered: true,
        },
        {
          id: `free-${n}`,
          webhook: "free",
          uid: "u",
          url: "https://b.example",
          payload: "{}",
          maxAttempts: 2,
        },
      ],
    })),
  };
  await fanoutEvents(redis, plan, TEST_FANOUT_LIMITS, keys);
}

/** The delivery ids of the work queue's entries, oldest first. */
async function work(keys: Keyspace): Promise<string[]> {
  return (await redis.xrange(keys.deliveries, "-", "+")).map(
    ([, fields]) => fields[fields.indexOf("id") + 1]!,
  );
}

const queue = (keys: Keyspace) => redis.lrange(keys.orderedQueue("ns", "ord"), 0, -1);

async function version(keys: Keyspace, id: string): Promise<string> {
  return String((await readDelivery(redis, id, keys))!.version);
}

describe("an ordered webhook's queue", () => {
  it("gives work to its head only, while unordered deliveries all get theirs", async () => {
    const keys = keyspace(uniqueKeyTag());
    await fanout(keys, [1, 2, 3]);
    expect(await queue(keys)).toEqual(["ord-1", "ord-2", "ord-3"]);
    expect(await work(keys)).toEqual(["ord-1", "free-1", "free-2", "free-3"]);
    expect(await redis.smembers(keys.orderedQueues)).toEqual([keys.orderedQueue("ns", "ord")]);
    expect((await readDelivery(redis, "ord-2", keys))!.phase).toBe("QUEUED");
    // a later fan-out appends behind them
    await fanout(keys, [4]);
    expect(await queue(keys)).toEqual(["ord-1", "ord-2", "ord-3", "ord-4"]);
    expect((await work(keys)).filter((id) => id.startsWith("ord-"))).toEqual(["ord-1"]);
  });

  it("keeps the turn while the head is retried, and hands it on when it is SENT or FAILED", async () => {
    const keys = keyspace(uniqueKeyTag());
    await fanout(keys, [1, 2, 3]);
    await redis.del(keys.deliveries);

    // a failed attempt with a retry scheduled: the head keeps blocking the queue
    const due = String(Date.now() + 60_000);
    expect(
      await settle(redis, keys, [
        { entryId: "", id: "ord-1", version: "0", kind: "retry", attempt: failedAttempt(1), due },
      ]),
    ).toBe("a");
    expect(await queue(keys)).toEqual(["ord-1", "ord-2", "ord-3"]);
    expect(await work(keys)).toEqual([]);

    // FAILED: the next one is the head and its work is queued in the same step
    expect(
      await settle(redis, keys, [
        {
          entryId: "",
          id: "ord-1",
          version: "1",
          kind: "failed",
          attempt: failedAttempt(2),
          reason: "attempts-exhausted",
        },
      ]),
    ).toBe("a");
    expect(await queue(keys)).toEqual(["ord-2", "ord-3"]);
    expect(await work(keys)).toEqual(["ord-2"]);

    // SENT: likewise
    expect(
      await settle(redis, keys, [
        { entryId: "", id: "ord-2", version: "0", kind: "sent", attempt: failedAttempt(1) },
      ]),
    ).toBe("a");
    expect(await queue(keys)).toEqual(["ord-3"]);
    expect(await work(keys)).toEqual(["ord-2", "ord-3"]);

    // an outcome recorded twice (stale version) hands nothing on
    expect(
      await settle(redis, keys, [
        { entryId: "", id: "ord-2", version: "0", kind: "sent", attempt: failedAttempt(1) },
      ]),
    ).toBe("s");
    expect(await work(keys)).toEqual(["ord-2", "ord-3"]);

    // the last one: the queue is gone, and so is its entry in the set of queues
    expect(
      await settle(redis, keys, [
        { entryId: "", id: "ord-3", version: "0", kind: "sent", attempt: failedAttempt(1) },
      ]),
    ).toBe("a");
    expect(await queue(keys)).toEqual([]);
    expect(await redis.scard(keys.orderedQueues)).toBe(0);
    // unordered deliveries never touch it
    await settle(redis, keys, [
      { entryId: "", id: "free-1", version: "0", kind: "failed", attempt: failedAttempt(1), reason: "gone" },
    ]);
    expect(await redis.exists(keys.orderedQueue("ns", "free"))).toBe(0);
  });

  it("sends a retried FAILED delivery to the tail (at once when the queue is empty)", async () => {
    const keys = keyspace(uniqueKeyTag());
    await fanout(keys, [1, 2]);
    await settle(redis, keys, [
      { entryId: "", id: "ord-1", version: "0", kind: "failed", attempt: failedAttempt(1), reason: "gone" },
    ]);
    await redis.del(keys.deliveries);
    expect(await queue(keys)).toEqual(["ord-2"]);

    const limits = { retentionMs: 60_000, statusStreamMaxLen: 1000 };
    expect((await requestRetry(redis, "ord-1", "t1", keys, limits, "any-namespace")).outcome).toBe(
      "requeued",
    );
    expect(await queue(keys)).toEqual(["ord-2", "ord-1"]);
    expect(await work(keys)).toEqual([]); // it waits for ord-2

    await settle(redis, keys, [
      { entryId: "", id: "ord-2", version: "0", kind: "sent", attempt: failedAttempt(1) },
    ]);
    expect(await work(keys)).toEqual(["ord-1"]);
    await settle(redis, keys, [
      {
        entryId: "",
        id: "ord-1",
        version: await version(keys, "ord-1"),
        kind: "failed",
        attempt: failedAttempt(1),
        reason: "gone",
      },
    ]);
    expect(await queue(keys)).toEqual([]);

    // nothing waiting: the retried delivery is the head at once
    await redis.del(keys.deliveries);
    expect((await requestRetry(redis, "ord-1", "t2", keys, limits, "any-namespace")).outcome).toBe(
      "requeued",
    );
    expect(await queue(keys)).toEqual(["ord-1"]);
    expect(await work(keys)).toEqual(["ord-1"]);
  });

  it("skips ids whose delivery is no longer QUEUED (or gone) when the turn passes", async () => {
    const keys = keyspace(uniqueKeyTag());
    await fanout(keys, [1, 2, 3, 4]);
    await redis.del(keys.delivery("ord-2")); // lost with Redis's data, say
    await settle(redis, keys, [
      { entryId: "", id: "ord-3", version: "0", kind: "failed", reason: "webhook-removed" },
    ]);
    // ord-3 left the queue (it was not the head: taken out where it was)
    expect(await queue(keys)).toEqual(["ord-1", "ord-2", "ord-4"]);
    await redis.del(keys.deliveries);
    await settle(redis, keys, [
      { entryId: "", id: "ord-1", version: "0", kind: "sent", attempt: failedAttempt(1) },
    ]);
    expect(await queue(keys)).toEqual(["ord-4"]);
    expect(await work(keys)).toEqual(["ord-4"]);
  });

  it("moves on when its head's record is gone (maintenance heals what no settle will)", async () => {
    const keys = keyspace(uniqueKeyTag());
    await fanout(keys, [1, 2]);
    const heal = () =>
      runScript(redis, healOrderedQueuesScript, [keys.deliveries, keys.orderedQueues], [keys.prefix]);
    expect(await heal()).toBe(0); // a QUEUED head: nothing to do
    await redis.del(keys.deliveries, keys.delivery("ord-1")); // lost, or expired during a long pause
    expect(await heal()).toBe(1);
    expect(await queue(keys)).toEqual(["ord-2"]);
    expect(await work(keys)).toEqual(["ord-2"]);
    await settle(redis, keys, [
      { entryId: "", id: "ord-2", version: "0", kind: "sent", attempt: failedAttempt(1) },
    ]);
    expect(await redis.scard(keys.orderedQueues)).toBe(0);
    // a queue key lost on its own leaves the set at the next round
    await redis.sadd(keys.orderedQueues, keys.orderedQueue("ns", "gone"));
    expect(await heal()).toBe(0);
    expect(await redis.scard(keys.orderedQueues)).toBe(0);
  });
});
