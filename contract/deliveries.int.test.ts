import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  createDelivery as createTestDelivery,
  failedAttempt,
  failDelivery as failTestDelivery,
  settle as settleTest,
  TEST_FANOUT_LIMITS,
} from "../test/support/deliveries.ts";
import { uniqueKeyTag } from "../test/support/fixtures.ts";
import {
  countFanoutFailure,
  deadLetterEntry,
  fanoutEvents,
  parseStatusEntry,
  readDelivery,
  requestRetries,
  requestRetry,
} from "./deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace, keyspace } from "./keys.ts";
import { MAX_COMMAND_BYTES } from "./scripts/command-size.ts";
import type { FanoutPlan } from "./scripts/fanout-events.ts";
import { isScriptInputError } from "./scripts/script.ts";
import type { SettleOutcome } from "./scripts/settle-deliveries.ts";
import { ensureConsumerGroup } from "./streams/stream-consumer.ts";

// The protocol on its own: records created and settled by the scripts, read and retried by the
// helpers the operator uses, with nothing but a Redis client.

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

const createDelivery = (keys: Keyspace, id: string) => createTestDelivery(redis, keys, id);
const failDelivery = (keys: Keyspace, id: string) => failTestDelivery(redis, keys, id);
const settle = (keys: Keyspace, outcomes: SettleOutcome[]) => settleTest(redis, keys, outcomes);
const attempt = failedAttempt;

describe("delivery records", () => {
  it("are created QUEUED and record attempts, with a status entry per change", async () => {
    const keys = keyspace(uniqueKeyTag());
    await createDelivery(keys, "hook-abc");
    const created = await readDelivery(redis, "hook-abc", keys);
    expect(created).toMatchObject({
      phase: "QUEUED",
      attempts: [],
      cycle: 1,
      cycleAttempts: 0,
      maxAttempts: 3,
    });

    await failDelivery(keys, "hook-abc");
    const failed = await readDelivery(redis, "hook-abc", keys);
    expect(failed).toMatchObject({ phase: "FAILED", failureReason: "attempts-exhausted", cycleAttempts: 2 });
    expect(failed!.attempts.map((a) => a.number)).toEqual([1, 2]);

    const entries = (await redis.xrange(keys.status, "-", "+")).map(([id, fields]) =>
      parseStatusEntry(id, fields),
    );
    expect(entries.map((entry) => [entry.phase, entry.attempts])).toEqual([
      ["QUEUED", 0],
      ["QUEUED", 1],
      ["FAILED", 2],
    ]);
    expect(entries[2]).toMatchObject({
      deliveryId: "hook-abc",
      namespace: "ns",
      webhook: "hook",
      failureReason: "attempts-exhausted",
    });
  });

  it("ignore an outcome recorded against a stale version (two workers, one attempt)", async () => {
    const keys = keyspace(uniqueKeyTag());
    await createDelivery(keys, "hook-stale");
    expect(
      await settle(keys, [
        { entryId: "", id: "hook-stale", version: "0", kind: "sent", attempt: attempt(1) },
      ]),
    ).toBe("a");
    expect(
      await settle(keys, [
        { entryId: "", id: "hook-stale", version: "0", kind: "sent", attempt: attempt(1) },
      ]),
    ).toBe("s");
    expect((await readDelivery(redis, "hook-stale", keys))!.attempts).toHaveLength(1);
  });

  it("are handed back once however often the hand-back is recorded (a batch re-sent after a reconnect)", async () => {
    const keys = keyspace(uniqueKeyTag());
    await ensureConsumerGroup(redis, keys.deliveries, CONSUMER_GROUPS.delivery);
    await createDelivery(keys, "hook-back");
    const read = (await redis.xreadgroup(
      "GROUP",
      CONSUMER_GROUPS.delivery,
      "worker",
      "COUNT",
      10,
      "STREAMS",
      keys.deliveries,
      ">",
    )) as Array<[string, Array<[string, string[]]>]>;
    const entryId = read[0]![1][0]![0];
    const handBack: SettleOutcome = { entryId, id: "hook-back", version: "0", kind: "defer", due: "1" };
    expect(await settle(keys, [handBack])).toBe("k");
    expect(await redis.zscore(keys.scheduled, "hook-back")).toBe("1");
    // promoted to a new work entry (which another replica may be attempting now)
    await redis.zrem(keys.scheduled, "hook-back");
    // the same batch once more: the entry was acknowledged already, nothing to hand back twice
    await settle(keys, [handBack]);
    expect(await redis.zscore(keys.scheduled, "hook-back")).toBeNull();
  });
});

describe("batches larger than one Redis command should be", () => {
  // 120 events with a 2 KB payload each: well over MAX_COMMAND_BYTES, so several script calls
  const payload = JSON.stringify({ blob: "x".repeat(2_000) });
  const planOf = (ids: string[]): FanoutPlan => ({
    invalid: [],
    events: ids.map((id) => ({
      entryId: "",
      namespace: "ns",
      id: `evt-${id}`,
      type: "job.created",
      occurredAt: "2025-01-01T00:00:00.000Z",
      ingestedAt: Date.now(),
      data: payload,
      routing: "routed",
      deliveries: [{ id, webhook: "hook", uid: "u", url: "https://example.com", payload, maxAttempts: 3 }],
    })),
  });

  it("fanned out in parts, every event counted in order, and found done when recorded again", async () => {
    const keys = keyspace(uniqueKeyTag());
    const ids = Array.from({ length: 120 }, (_, i) => `hook-big-${i}`);
    expect(120 * payload.length * 2).toBeGreaterThan(3 * MAX_COMMAND_BYTES);
    expect(await fanoutEvents(redis, planOf(ids), TEST_FANOUT_LIMITS, keys)).toEqual(ids.map(() => 1));
    expect(await redis.xlen(keys.deliveries)).toBe(120);
    for (const id of [ids[0]!, ids[60]!, ids[119]!])
      expect((await readDelivery(redis, id, keys))?.phase).toBe("QUEUED");
    // the same plan again (a batch retried after a failure part-way): duplicates, nothing made twice
    expect(await fanoutEvents(redis, planOf(ids), TEST_FANOUT_LIMITS, keys)).toEqual(ids.map(() => -1));
    expect(await redis.xlen(keys.deliveries)).toBe(120);
  });

  it("settled in parts, one result per outcome in order", async () => {
    const keys = keyspace(uniqueKeyTag());
    const ids = Array.from({ length: 300 }, (_, i) => `hook-many-${i}`);
    await fanoutEvents(redis, planOf(ids), TEST_FANOUT_LIMITS, keys);
    const longAttempt = JSON.stringify({ ...JSON.parse(attempt(1)), error: "e".repeat(400) });
    const outcomes: SettleOutcome[] = ids.map((id, i) =>
      i % 3 === 0
        ? { entryId: "", id, version: "1", kind: "sent", attempt: longAttempt } // stale: version 0 is current
        : { entryId: "", id, version: "0", kind: "sent", attempt: longAttempt },
    );
    expect(300 * longAttempt.length).toBeGreaterThan(2 * MAX_COMMAND_BYTES);
    expect(await settle(keys, outcomes)).toBe(ids.map((_, i) => (i % 3 === 0 ? "s" : "a")).join(""));
    expect((await readDelivery(redis, ids[299]!, keys))?.phase).toBe("SENT");
    expect((await readDelivery(redis, ids[0]!, keys))?.phase).toBe("QUEUED");
  });
});

const ANY = "any-namespace" as const;

describe("requestRetry", () => {
  it("requeues a FAILED delivery once per token with a fresh budget", async () => {
    const keys = keyspace(uniqueKeyTag());
    await createDelivery(keys, "hook-retry");
    expect(await requestRetry(redis, "hook-retry", "t1", keys, TEST_FANOUT_LIMITS, ANY)).toEqual({
      outcome: "not-failed",
    });
    await failDelivery(keys, "hook-retry");
    const queuedBefore = await redis.xlen(keys.deliveries);

    expect(await requestRetry(redis, "hook-retry", "t1", keys, TEST_FANOUT_LIMITS, ANY)).toEqual({
      outcome: "requeued",
    });
    const requeued = await readDelivery(redis, "hook-retry", keys);
    expect(requeued).toMatchObject({ phase: "QUEUED", cycle: 2, cycleAttempts: 0, lastRetryToken: "t1" });
    expect(requeued!.failureReason).toBeUndefined();
    expect(requeued!.attempts).toHaveLength(2); // history is kept
    expect(await redis.xlen(keys.deliveries)).toBe(queuedBefore + 1);
    expect(await redis.zscore(keys.logFailed, "hook-retry")).toBeNull();

    // the same token again is a no-op, whatever the phase
    expect(await requestRetry(redis, "hook-retry", "t1", keys, TEST_FANOUT_LIMITS, ANY)).toEqual({
      outcome: "already-honoured",
    });
    // versions so far: 0 created, 1 retry scheduled, 2 FAILED, 3 requeued
    expect(
      await settle(keys, [
        { entryId: "", id: "hook-retry", version: "3", kind: "failed", attempt: attempt(3) },
      ]),
    ).toBe("a");
    expect((await readDelivery(redis, "hook-retry", keys))!.phase).toBe("FAILED");
    expect(await requestRetry(redis, "hook-retry", "t1", keys, TEST_FANOUT_LIMITS, ANY)).toEqual({
      outcome: "already-honoured",
    });
    expect(await requestRetry(redis, "hook-retry", "t2", keys, TEST_FANOUT_LIMITS, ANY)).toEqual({
      outcome: "requeued",
    });
    expect(await requestRetry(redis, "missing", "t2", keys, TEST_FANOUT_LIMITS, ANY)).toEqual({
      outcome: "not-found",
    });
  });

  it("refuses (as not found) a delivery of another namespace when scoped to one", async () => {
    const keys = keyspace(uniqueKeyTag());
    await createDelivery(keys, "hook-scoped"); // namespace "ns"
    await failDelivery(keys, "hook-scoped");
    const other = { namespace: "other" };
    expect(await requestRetry(redis, "hook-scoped", "t1", keys, TEST_FANOUT_LIMITS, other)).toEqual({
      outcome: "not-found",
    });
    expect(await requestRetries(redis, ["hook-scoped"], "t1", keys, TEST_FANOUT_LIMITS, other)).toEqual([
      "not-found",
    ]);
    expect((await readDelivery(redis, "hook-scoped", keys))!.phase).toBe("FAILED");
    expect(
      await requestRetry(redis, "hook-scoped", "t1", keys, TEST_FANOUT_LIMITS, { namespace: "ns" }),
    ).toEqual({ outcome: "requeued" });
  });

  it("requeues a SENT delivery only when asked to (a replay), once per token, never a QUEUED one", async () => {
    const keys = keyspace(uniqueKeyTag());
    await createDelivery(keys, "s-1");
    const sentAttempt = JSON.stringify({
      number: 1,
      startedAt: new Date().toISOString(),
      durationMs: 2,
      statusCode: 200,
    });
    await settle(keys, [{ entryId: "", id: "s-1", version: "0", kind: "sent", attempt: sentAttempt }]);
    await createDelivery(keys, "q-1");
    expect(await requestRetries(redis, ["s-1"], "r1", keys, TEST_FANOUT_LIMITS, ANY)).toEqual(["not-failed"]);
    const both = ["FAILED", "SENT"] as const;
    expect(await requestRetries(redis, ["s-1", "q-1"], "r1", keys, TEST_FANOUT_LIMITS, ANY, both)).toEqual([
      "requeued",
      "not-failed",
    ]);
    expect(await readDelivery(redis, "s-1", keys)).toMatchObject({ phase: "QUEUED", cycle: 2 });
    expect(await requestRetries(redis, ["s-1"], "r1", keys, TEST_FANOUT_LIMITS, ANY, both)).toEqual([
      "already-honoured",
    ]);
  });

  it("retries many in one round trip", async () => {
    const keys = keyspace(uniqueKeyTag());
    for (const id of ["a-1", "a-2"]) {
      await createDelivery(keys, id);
      await failDelivery(keys, id);
    }
    expect(
      await requestRetries(redis, ["a-1", "a-2", "nope"], "bulk", keys, TEST_FANOUT_LIMITS, ANY),
    ).toEqual(["requeued", "requeued", "not-found"]);
  });
});

describe("ingest entries whose fan-out keeps failing", () => {
  /** An entry read (and so pending) in the fan-out group, as a dispatcher holds it. */
  async function pendingEntry(keys: Keyspace, fields: string[]): Promise<string> {
    await ensureConsumerGroup(redis, keys.events, CONSUMER_GROUPS.fanout);
    const id = await redis.xadd(keys.events, "*", ...fields);
    await redis.xreadgroup("GROUP", CONSUMER_GROUPS.fanout, "c", "STREAMS", keys.events, ">");
    return id!;
  }

  it("count their failures while pending, across callers, and not once settled", async () => {
    const keys = keyspace(uniqueKeyTag());
    const id = await pendingEntry(keys, ["namespace", "ns"]);
    expect(await countFanoutFailure(redis, id, 60_000, keys)).toBe(1);
    expect(await countFanoutFailure(redis, id, 60_000, keys)).toBe(2);
    expect(await redis.pttl(keys.fanoutFailures(id))).toBeGreaterThan(50_000);
    await redis.xack(keys.events, CONSUMER_GROUPS.fanout, id);
    expect(await countFanoutFailure(redis, id, 60_000, keys)).toBe(0);
  });

  it("are moved to the dead letters with every field (beyond what Lua can unpack), acknowledged and forgotten", async () => {
    const keys = keyspace(uniqueKeyTag());
    const fields = ["namespace", "ns", ...Array.from({ length: 5_000 }, (_, i) => [`x${i}`, "v"]).flat()];
    const id = await pendingEntry(keys, fields);
    await countFanoutFailure(redis, id, 60_000, keys);
    await deadLetterEntry(redis, { entryId: id, reason: "broken", fields }, 100, keys);
    const [[, letter]] = (await redis.xrange(keys.deadLetters, "-", "+")) as [[string, string[]]];
    expect(letter).toEqual(["entryId", id, "reason", "broken", ...fields]);
    expect((await redis.xpending(keys.events, CONSUMER_GROUPS.fanout))[0]).toBe(0);
    expect(await redis.exists(keys.fanoutFailures(id))).toBe(0);
  });

  it("break the fan-out script with an error that blames the input, unlike Redis's own refusals", async () => {
    const keys = keyspace(uniqueKeyTag());
    // invalid (no type), with more fields than the script's unpack takes to dead-letter it
    const fields = ["namespace", "ns", ...Array.from({ length: 5_000 }, (_, i) => [`x${i}`, "v"]).flat()];
    const entryId = await pendingEntry(keys, fields);
    const plan = (reason: string) => ({ events: [], invalid: [{ entryId, reason, fields }] });
    const failure = await fanoutEvents(redis, plan("invalid"), TEST_FANOUT_LIMITS, keys).catch(
      (e: unknown) => e,
    );
    expect(String(failure)).toMatch(/too many results to unpack/);
    expect(isScriptInputError(failure)).toBe(true);
    // a key of the wrong type is Redis's state, not the input: every batch would fail alike
    await redis.set(keys.deadLetters, "not a stream");
    const small = { events: [], invalid: [{ entryId, reason: "invalid", fields: ["namespace", "ns"] }] };
    const wrongType = await fanoutEvents(redis, small, TEST_FANOUT_LIMITS, keys).catch((e: unknown) => e);
    expect(String(wrongType)).toMatch(/^ReplyError: WRONGTYPE/);
    expect(isScriptInputError(wrongType)).toBe(false);
  });

  it("that are invalid are moved to the dead letters once, however often their batch is recorded", async () => {
    const keys = keyspace(uniqueKeyTag());
    const fields = ["namespace", "ns", "data", "{}"];
    const entryId = await pendingEntry(keys, fields);
    const plan = { events: [], invalid: [{ entryId, reason: "no type", fields }] };
    await fanoutEvents(redis, plan, TEST_FANOUT_LIMITS, keys);
    await fanoutEvents(redis, plan, TEST_FANOUT_LIMITS, keys); // a split batch's retry, a claim
    expect(await redis.xlen(keys.deadLetters)).toBe(1);
    expect((await redis.xpending(keys.events, CONSUMER_GROUPS.fanout))[0]).toBe(0);
  });
});
