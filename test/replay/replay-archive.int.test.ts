import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, inject, it } from "vitest";
import {
  readArchiveReplayProgress,
  readArchiveReplays,
  requestArchiveReplay,
} from "../../contract/archive-replays.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { NamespaceRoutingInput } from "../../contract/routing-config.ts";
import { ArchiveStore } from "../../dispatcher/archive/archive-store.ts";
import { type Dispatcher, startDispatcher } from "../../dispatcher/dispatcher.ts";
import { replayToken } from "../../operator/replay/replay.ts";
import { storeWalkKeys } from "../../operator/replay/replay-controller.ts";
import { freshDatabase, receiver, redis, useArchiveFrame } from "../support/archive-frame.ts";
import { fakeReplay } from "../support/fake-replay.ts";
import { api, eventually, routeNamespaces, testRouting, testSettings } from "../support/fixtures.ts";

// A WebhookReplay when the dispatchers archive to a durable log store: Redis's log reaches back to
// the archive horizon only, the rest is in PostgreSQL. The operator's reconciler (the API server
// faked as in operator/replay/replay.int.test.ts) walks Redis and hands the rest to the dispatcher,
// which walks the store with the replay's token: real PostgreSQL, real Redis, a real dispatcher
// delivering to a real receiver on 127.0.0.1.

useArchiveFrame();
let dispatcher: Dispatcher | undefined;
let store: ArchiveStore | undefined;

afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
  await store?.close();
  store = undefined;
});

/** A dispatcher archiving into a fresh database, with a short hot window and fast rounds. */
async function start(
  routing: NamespaceRoutingInput,
  hotWindowMs: number,
  others: NamespaceRoutingInput[] = [],
): Promise<Dispatcher> {
  const url = await freshDatabase("r");
  store = new ArchiveStore({ url, retentionDays: 30, max: 1 });
  dispatcher = await startDispatcher(
    testSettings(inject("redisUrl"), {
      postgresUrl: url,
      archiveHotWindowMs: hotWindowMs,
      archiveIntervalMs: 100,
      maintenanceIntervalMs: 200,
    }),
  );
  await routeNamespaces(redis, dispatcher, [routing, ...others]);
  return dispatcher;
}

function routing(namespace: string, webhooks: NamespaceRoutingInput["webhooks"]): NamespaceRoutingInput {
  return testRouting(namespace, webhooks, {
    delivery: {
      maxAttempts: 2,
      timeoutMs: 2_000,
      backoff: { initialDelayMs: 20, maxDelayMs: 20, multiplier: 1 },
      // the deliveries must spend their attempts and end FAILED
      circuitBreaker: { consecutiveFailures: 0 },
    },
  });
}

async function ingest(namespace: string, ids: string[]): Promise<void> {
  for (const id of ids) {
    const response = await api(dispatcher!.url, "POST", "/v1/events", {
      type: "job.created",
      namespace,
      id,
      data: { id },
    });
    expect(response.status).toBe(202);
  }
}

/** Waits until the store has these deliveries FAILED and Redis no record of them. */
async function onlyInStore(keys: Keyspace, ids: string[]): Promise<void> {
  await eventually(
    async () => {
      const rows = await store!.sql<{ id: string; phase: string }[]>`
        select id, phase from dataforce_deliveries where id = any(${store!.sql.array(ids)})`;
      if (rows.length < ids.length || rows.some((row) => row.phase !== "FAILED")) return undefined;
      const inRedis = await Promise.all(ids.map((id) => redis.exists(keys.delivery(id))));
      return inRedis.every((count) => count === 0) ? true : undefined;
    },
    30_000,
    "archived FAILED and gone from Redis",
  );
}

/** The replay, its window ending a second from now; `run` reconciles it as a new operator would. */
function replayIn(namespace: string, name: string, spec: Record<string, unknown>) {
  const replay = fakeReplay(spec, { namespace, name, createdAt: new Date(Date.now() + 1_000) });
  const run = () => replay.run({ redis, keys: dispatcher!.keys }, { rounds: 60 });
  return { ...replay, run };
}

describe("a WebhookReplay over the durable log store", () => {
  it("requeues the deliveries only PostgreSQL still has and those Redis lists, each once, rate-limited, counted together", async () => {
    const ns = "replay-archive";
    let answer = 503;
    receiver.on("/ra", () => ({ kind: "respond", status: answer }));
    // archived deliveries stay in Redis 3 s: the newest stays listed by Redis during the replay
    const { keys } = await start(
      routing(ns, [{ name: "hook", uid: "u1", event: "job.created", url: receiver.url("/ra") }]),
      3_000,
    );
    const from = new Date(Date.now() - 1_000).toISOString();
    const old = ["a-1", "a-2", "a-3", "a-4", "a-5"];
    await ingest(ns, old);
    const oldIds = old.map((id) => deliveryId(ns, id, "hook"));
    await onlyInStore(keys, oldIds);
    // one more, FAILED, still in Redis (and in the store soon): the Redis walk's
    await ingest(ns, ["a-6"]);
    const recentId = deliveryId(ns, "a-6", "hook");
    await eventually(
      async () => ((await redis.get(keys.delivery(recentId)))?.includes("FAILED") ? true : undefined),
      10_000,
      "the recent one FAILED",
    );
    const failedRequests = receiver.requests("/ra").length;
    answer = 200;

    const replay = replayIn(ns, "after-outage", { from, phases: ["FAILED"], maxPerSecond: 2 });
    const started = Date.now();
    await replay.run();
    expect(replay.ready()).toMatchObject({
      status: "True",
      reason: "Complete",
      message: "replayed: 6 of 6 matched deliveries requeued, 0 skipped",
    });
    expect(replay.object.status).toMatchObject({
      matched: 6,
      requeued: 6,
      skipped: 0,
      source: "DurableStore",
    });
    // 5 from the store at 2 a second: three pages, at least two seconds
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    const sent = await receiver.waitForRequests(failedRequests + 6, "/ra", 20_000);
    const resent = sent.slice(failedRequests).map((request) => String(request.headers["webhook-id"]));
    expect(resent.sort()).toEqual([...oldIds, recentId].sort());
    // the operator forgot the dispatchers' walk once it reported it
    expect(await readArchiveReplayProgress(redis, keys, replayToken(replay.object))).toBeNull();

    // a new operator that lost the status (a leader without it) walks again: the token sends nothing twice
    delete replay.object.status;
    await replay.run();
    expect(replay.ready()).toMatchObject({ status: "True", reason: "Complete" });
    await sleep(1_000);
    expect(receiver.requests("/ra")).toHaveLength(failedRequests + 6);
  });

  it("sends the deliveries only PostgreSQL has to the target webhook as new deliveries, once; a deleted replay's walk is cancelled", async () => {
    const ns = "replay-archive-copy";
    receiver.on("/rc-old", { kind: "respond", status: 503 });
    receiver.on("/rc-new", { kind: "respond", status: 200 });
    const { keys } = await start(
      routing(ns, [
        { name: "old", uid: "old-uid", event: "job.created", url: receiver.url("/rc-old") },
        { name: "new", uid: "new-uid", event: "job.created", url: receiver.url("/rc-new") },
      ]),
      1_000,
    );
    const from = new Date(Date.now() - 1_000).toISOString();
    await ingest(ns, ["c-1", "c-2", "c-3"]);
    await onlyInStore(
      keys,
      ["c-1", "c-2", "c-3"].map((id) => deliveryId(ns, id, "old")),
    );
    // the new webhook got them too (it subscribes to the same event): those are not replayed
    const before = receiver.requests("/rc-new").length;

    const replay = replayIn(ns, "to-new", {
      from,
      phases: ["FAILED"],
      webhook: "old",
      targetWebhook: "new",
    });
    await replay.run();
    expect(replay.ready()).toMatchObject({
      status: "True",
      reason: "Complete",
      message: "replayed: 3 of 3 matched deliveries sent to webhook new, 0 skipped",
    });
    const received = await receiver.waitForRequests(before + 3, "/rc-new", 20_000);
    const copies = received.slice(before).map((request) => String(request.headers["webhook-id"]));
    expect(new Set(copies).size).toBe(3);
    expect(copies.every((id) => id.startsWith("new-"))).toBe(true);
    expect(
      received
        .slice(before)
        .map((r) => (JSON.parse(r.body) as { id: string }).id)
        .sort(),
    ).toEqual(["c-1", "c-2", "c-3"]);

    // the copies are archived and leave Redis after the hot window; an operator that lost the
    // status asks for the store's walk again: the copies the store has are not made again
    const copyIds = copies; // a copy's webhook-id is its delivery id
    await eventually(
      async () => {
        const rows = await store!.sql<{ id: string }[]>`
          select id from dataforce_deliveries where id = any(${store!.sql.array(copyIds)}) and phase = 'SENT'`;
        const inRedis = await Promise.all(copyIds.map((id) => redis.exists(keys.delivery(id))));
        return rows.length === 3 && inRedis.every((count) => count === 0) ? true : undefined;
      },
      20_000,
      "copies archived and gone from Redis",
    );
    delete replay.object.status;
    await replay.run();
    expect(replay.ready()).toMatchObject({
      reason: "Complete",
      message: "replayed: 3 of 3 matched deliveries sent to webhook new, 0 skipped",
    });
    await sleep(1_000);
    expect(receiver.requests("/rc-new").slice(before)).toHaveLength(3);

    // a replay deleted while the dispatchers walk the store: its request is cancelled
    const token = "replay:deleted-uid:1";
    await requestArchiveReplay(
      redis,
      keys,
      {
        namespace: ns,
        replay: "gone",
        token,
        from: 0,
        to: 1,
        horizon: 1,
        phases: ["FAILED"],
        maxPerSecond: 1,
      },
      { matched: 0, requeued: 0, skipped: 0 },
    );
    // an operator's replay controller queues it at its start, even with no such replay any more
    expect(await storeWalkKeys({ redis, keys })).toContain(`${ns}/gone`);
    const gone = replayIn(ns, "gone", { from, phases: ["FAILED"] });
    gone.delete();
    await gone.run();
    expect((await readArchiveReplays(redis, keys)).map((r) => r.request.token)).not.toContain(token);
  });

  it("reaches archived deliveries that Redis no longer has although the archive horizon has not passed them", async () => {
    // the horizon trails the hot window, and the oldest delivery not yet archived; records leave
    // Redis when the hot window has passed since they were archived, or when Redis loses them: a
    // row can be gone from Redis and still after the horizon, listed by neither walk but the store's
    const ns = "replay-archive-held";
    let answer = 503;
    receiver.on("/rh", () => ({ kind: "respond", status: answer }));
    const { keys } = await start(
      routing(ns, [{ name: "hook", uid: "u1", event: "job.created", url: receiver.url("/rh") }]),
      30_000,
    );
    const from = new Date(Date.now() - 1_000).toISOString();
    const events = ["h-2", "h-3", "h-4"];
    await ingest(ns, events);
    const ids = events.map((id) => deliveryId(ns, id, "hook"));
    await eventually(
      async () => {
        const rows = await store!.sql<{ phase: string }[]>`
          select phase from dataforce_deliveries where id = any(${store!.sql.array(ids)})`;
        return rows.length === ids.length && rows.every((row) => row.phase === "FAILED") ? true : undefined;
      },
      30_000,
      "archived FAILED",
    );
    await redis.del(...ids.map((id) => keys.delivery(id)));
    const horizon = Number(await redis.get(keys.archiveHorizon));
    const created = await store!.sql<{ created_at: Date }[]>`
      select created_at from dataforce_deliveries where id = any(${store!.sql.array(ids)})`;
    expect(created.every((row) => row.created_at.getTime() >= horizon)).toBe(true);
    const failedRequests = receiver.requests("/rh").length;
    answer = 200;

    const replay = replayIn(ns, "held", { from, phases: ["FAILED"], maxPerSecond: 10 });
    await replay.run();
    expect(replay.object.status).toMatchObject({ matched: 3, requeued: 3, skipped: 0 });
    const sent = await receiver.waitForRequests(failedRequests + 3, "/rh", 20_000);
    expect(
      sent
        .slice(failedRequests)
        .map((request) => String(request.headers["webhook-id"]))
        .sort(),
    ).toEqual([...ids].sort());
  });
});
