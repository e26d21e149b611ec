import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { readDelivery } from "../../contract/deliveries.ts";
import { type Keyspace, keyspace } from "../../contract/keys.ts";
import { publishRecordLimits } from "../../contract/record-limits.ts";
import { createDelivery, failDelivery, settle, TEST_FANOUT_LIMITS } from "../../test/support/deliveries.ts";
import { type FakeReplay, fakeReplay } from "../../test/support/fake-replay.ts";
import { uniqueKeyTag } from "../../test/support/fixtures.ts";
import { replayToken, selectDeliveries } from "./replay.ts";

// The replay's Redis side with the real scripts and the real event log: which deliveries a
// replay requeues, at what pace, and that it never requeues one twice. The API server is faked:
// a cache holding one object, and status patches merged into it as the API server would.

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

const sentAttempt = () =>
  JSON.stringify({ number: 1, startedAt: new Date().toISOString(), durationMs: 2, statusCode: 200 });

async function sentDelivery(keys: Keyspace, id: string): Promise<void> {
  await createDelivery(redis, keys, id);
  await settle(redis, keys, [{ entryId: "", id, version: "0", kind: "sent", attempt: sentAttempt() }]);
}

/** Reconciles the replay until it is done; returns how many reconciles it took. */
async function runToCompletion(api: FakeReplay, keys: Keyspace, maxRounds = 20): Promise<number> {
  return (await api.run({ redis, keys }, { rounds: maxRounds })).rounds;
}

describe("WebhookReplay against the event log", () => {
  it("requeues exactly the FAILED deliveries of the time range, rate-limited, once; re-applying does nothing", async () => {
    const keys = keyspace(uniqueKeyTag());
    await publishRecordLimits(redis, keys, TEST_FANOUT_LIMITS);
    await createDelivery(redis, keys, "old");
    await failDelivery(redis, keys, "old");
    await sleep(20);
    const from = new Date().toISOString();
    for (const id of ["f-1", "f-2", "f-3"]) {
      await createDelivery(redis, keys, id);
      await failDelivery(redis, keys, id);
    }
    await sentDelivery(keys, "s-1");
    await createDelivery(redis, keys, "q-1"); // still QUEUED
    await sleep(20);
    const to = new Date().toISOString();
    await sleep(20);
    await createDelivery(redis, keys, "late");
    await failDelivery(redis, keys, "late");

    const api = fakeReplay({ from, to, phases: ["FAILED"], maxPerSecond: 2 });
    const started = Date.now();
    const rounds = await runToCompletion(api, keys);
    // 3 deliveries at 2 a second: two pages, one second apart
    expect(rounds).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(api.object.status).toMatchObject({ observedGeneration: 1, matched: 3, requeued: 3, skipped: 0 });
    expect(api.object.status?.cursor).toBeUndefined();
    expect(api.object.status?.completedAt).toEqual(expect.any(String));
    expect(api.object.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "True",
      reason: "Complete",
      message: "replayed: 3 of 3 matched deliveries requeued, 0 skipped",
    });
    // while it ran: Ready=False/Replaying with Reconciling=True (kstatus: in progress)
    expect(api.patches[0]?.conditions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "Ready", status: "False", reason: "Replaying" }),
        expect.objectContaining({ type: "Reconciling", status: "True", reason: "Replaying" }),
      ]),
    );
    expect(api.events).toEqual(["ReplayComplete"]);
    for (const id of ["f-1", "f-2", "f-3"]) {
      expect(await readDelivery(redis, id, keys)).toMatchObject({
        phase: "QUEUED",
        lastRetryToken: replayToken(api.object),
      });
    }
    for (const [id, phase] of [
      ["old", "FAILED"],
      ["late", "FAILED"],
      ["s-1", "SENT"],
      ["q-1", "QUEUED"],
    ] as const) {
      expect((await readDelivery(redis, id, keys))?.phase, id).toBe(phase);
    }

    // applied again (same generation): nothing
    const patches = api.patches.length;
    await runToCompletion(api, keys);
    expect(api.patches).toHaveLength(patches);
  });

  it("a replay that restarts from an older status (a crash before its status write) requeues nothing twice", async () => {
    const keys = keyspace(uniqueKeyTag());
    await publishRecordLimits(redis, keys, TEST_FANOUT_LIMITS);
    const from = new Date(Date.now() - 1_000).toISOString();
    for (const id of ["a", "b"]) {
      await createDelivery(redis, keys, id);
      await failDelivery(redis, keys, id);
    }
    const api = fakeReplay({ from, phases: ["FAILED"], maxPerSecond: 10 });
    api.object.metadata.creationTimestamp = new Date(Date.now() + 1_000).toISOString();
    await runToCompletion(api, keys);
    expect(api.object.status).toMatchObject({ matched: 2, requeued: 2 });
    // the deliveries fail again; the status write was lost: a new process sees no progress
    for (const id of ["a", "b"]) {
      const record = await readDelivery(redis, id, keys);
      await settle(redis, keys, [
        {
          entryId: "",
          id,
          version: String(record!.version),
          kind: "failed",
          attempt: JSON.stringify({
            number: 3,
            startedAt: new Date().toISOString(),
            durationMs: 1,
            statusCode: 500,
            errorCode: "http_status",
          }),
          reason: "attempts-exhausted",
        },
      ]);
    }
    api.object.status = { observedGeneration: 0 };
    await runToCompletion(api, keys);
    // the same token: already honoured, counted, not requeued again
    expect(api.object.status).toMatchObject({ matched: 2, requeued: 2, skipped: 0 });
    for (const id of ["a", "b"]) expect((await readDelivery(redis, id, keys))?.phase).toBe("FAILED");

    // a changed spec is a new generation and a new token: it runs again
    api.object.metadata.generation = 2;
    await runToCompletion(api, keys);
    expect(api.object.status).toMatchObject({ observedGeneration: 2, matched: 2, requeued: 2 });
    for (const id of ["a", "b"]) expect((await readDelivery(redis, id, keys))?.phase).toBe("QUEUED");
  });

  it("replays SENT deliveries of one webhook and event type when asked to", async () => {
    const keys = keyspace(uniqueKeyTag());
    await publishRecordLimits(redis, keys, TEST_FANOUT_LIMITS);
    const from = new Date(Date.now() - 1_000).toISOString();
    await sentDelivery(keys, "sent-1");
    await createDelivery(redis, keys, "failed-1");
    await failDelivery(redis, keys, "failed-1");
    const api = fakeReplay({ from, phases: ["SENT"], webhook: "hook", eventType: "job.created" });
    api.object.metadata.creationTimestamp = new Date(Date.now() + 1_000).toISOString();
    await runToCompletion(api, keys);
    expect(api.object.status).toMatchObject({ matched: 1, requeued: 1 });
    expect((await readDelivery(redis, "sent-1", keys))?.phase).toBe("QUEUED");
    expect((await readDelivery(redis, "failed-1", keys))?.phase).toBe("FAILED");

    const other = fakeReplay({ from, phases: ["FAILED", "SENT"], webhook: "another" });
    other.object.metadata.creationTimestamp = new Date(Date.now() + 1_000).toISOString();
    await runToCompletion(other, keys);
    expect(other.object.status).toMatchObject({ matched: 0, requeued: 0, skipped: 0 });
  });

  it("reports a spec the API server would have refused as InvalidSpec (Stalled)", async () => {
    const keys = keyspace(uniqueKeyTag());
    const api = fakeReplay({ from: "2026-02-01T00:00:00Z", to: "2026-01-01T00:00:00Z" });
    await runToCompletion(api, keys);
    const conditions = api.object.status?.conditions ?? [];
    expect(conditions.find((c) => c.type === "Ready")).toMatchObject({
      status: "False",
      reason: "InvalidSpec",
      message: "invalid spec: to: from must not be after to",
    });
    expect(conditions.find((c) => c.type === "Stalled")).toMatchObject({ status: "True" });
  });
});

describe("selectDeliveries", () => {
  const item = (id: string, createdAt: string, phase: "QUEUED" | "SENT" | "FAILED") => ({
    id,
    eventId: id,
    eventType: "job.created",
    namespace: "ns",
    webhook: "hook",
    url: "https://example.com",
    phase,
    attempts: 1,
    maxAttempts: 3,
    cycle: 1,
    createdAt,
    updatedAt: createdAt,
  });
  it("takes the window's deliveries in the phases, and stops at the window's start", () => {
    const window = { from: Date.parse("2026-01-02T00:00:00Z"), to: Date.parse("2026-01-03T00:00:00Z") };
    expect(
      selectDeliveries(
        [
          item("too-new", "2026-01-04T00:00:00Z", "FAILED"),
          item("at-to", "2026-01-03T00:00:00Z", "FAILED"),
          item("sent", "2026-01-02T12:00:00Z", "SENT"),
          item("queued", "2026-01-02T12:00:00Z", "QUEUED"),
          item("at-from", "2026-01-02T00:00:00Z", "FAILED"),
          item("too-old", "2026-01-01T00:00:00Z", "FAILED"),
          item("older", "2025-12-01T00:00:00Z", "FAILED"),
        ],
        window,
        ["FAILED"],
      ),
    ).toEqual({ selected: ["at-to", "at-from"], reachedStart: true });
  });
});
