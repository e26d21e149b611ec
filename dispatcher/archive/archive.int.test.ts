import { randomUUID } from "node:crypto";
import pino from "pino";
import { afterEach, describe, expect, inject, it } from "vitest";
import { parseStatusEntry, readDelivery } from "../../contract/deliveries.ts";
import { copyDeliveryId, deliveryId } from "../../contract/delivery-id.ts";
import type { DeliverySummary } from "../../contract/delivery-log.ts";
import { keyspace } from "../../contract/keys.ts";
import { notificationPayload } from "../../contract/notification.ts";
import { onePartition } from "../../contract/partitions.ts";
import { archivesToStore, readRestoreRequests, requestRestore } from "../../contract/restore-requests.ts";
import { type NamespaceRoutingInput, tokenDigest } from "../../contract/routing-config.ts";
import {
  answeredMissing,
  MISSING_ANSWER_TTL_MS,
  readStatusRequests,
  requestStatus,
} from "../../contract/status-requests.ts";
import {
  freshDatabase,
  postgresServer,
  receiver,
  redis,
  useArchiveFrame,
} from "../../test/support/archive-frame.ts";
import {
  api,
  eventually,
  routeNamespaces,
  testRouting,
  testSettings,
  uniqueKeyTag,
} from "../../test/support/fixtures.ts";
import { type V1Event, v1Fanout, v1Settle } from "../../test/support/format1.ts";
import type { SettingsInput } from "../config.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher.ts";
import { createMetrics } from "../metrics.ts";
import {
  type ArchivedDelivery,
  ArchiveStore,
  ArchiveUnavailableError,
  partitionName,
} from "./archive-store.ts";
import { Archiver } from "./archiver.ts";

// The durable log store against a real PostgreSQL 15 (initdb + postgres, one database per test:
// test/support/archive-frame.ts) and the run's real Redis; deliveries go to a real receiver on
// 127.0.0.1.

useArchiveFrame();
let dispatcher: Dispatcher | undefined;
const stores: ArchiveStore[] = [];

afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
  readers.clear();
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

function storeOf(url: string, retentionDays = 30): ArchiveStore {
  const store = new ArchiveStore({ url, retentionDays, max: 2 });
  stores.push(store);
  return store;
}

/** A dispatcher archiving into `postgresUrl`, with a 1 s hot window and fast rounds. */
async function start(
  postgresUrl: string,
  routings: NamespaceRoutingInput[],
  overrides: Partial<SettingsInput> = {},
): Promise<Dispatcher> {
  dispatcher = await startDispatcher(
    testSettings(inject("redisUrl"), {
      postgresUrl,
      archiveHotWindowMs: 1_000,
      archiveIntervalMs: 100,
      maintenanceIntervalMs: 200,
      ...overrides,
    }),
  );
  await routeNamespaces(redis, dispatcher, routings);
  return dispatcher;
}

async function ingest(namespace: string, id: string, data: Record<string, unknown> = { ref: id }) {
  const response = await api(dispatcher!.url, "POST", "/v1/events", {
    type: "job.created",
    namespace,
    id,
    data,
  });
  expect(response.status).toBe(202);
}

/** One store per database for reading rows: tests poll, and a store per poll ran out of connections. */
const readers = new Map<string, ArchiveStore>();

async function archivedRows(url: string): Promise<Map<string, { phase: string; version: number }>> {
  let reader = readers.get(url);
  if (reader === undefined) {
    reader = storeOf(url);
    readers.set(url, reader);
  }
  const rows = await reader.sql<{ id: string; phase: string; version: number }[]>`
    select id, phase, version from dataforce_deliveries`;
  return new Map(rows.map((row) => [row.id, { phase: row.phase, version: row.version }]));
}

async function listAll(namespace: string, limit: number): Promise<DeliverySummary[]> {
  const items: DeliverySummary[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const query = `namespace=${namespace}&limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`;
    const response = await api(dispatcher!.url, "GET", `/v1/deliveries?${query}`);
    expect(response.status).toBe(200);
    const body = response.body as { items: DeliverySummary[]; nextCursor?: string };
    items.push(...body.items);
    cursor = body.nextCursor;
    if (cursor === undefined) return items;
  }
  throw new Error("listing did not end");
}

/**
 * A dispatcher for `namespace` (one webhook, a receiver that answers 200), one event ingested, and
 * its delivery archived SENT and gone from Redis (the hot window passed).
 */
async function oneSentOnlyInStore(namespace: string, eventId: string) {
  const url = await freshDatabase();
  const path = uniquePath(namespace);
  await start(url, [
    testRouting(namespace, [{ name: "hook", uid: "u1", event: "job.created", url: receiver.url(path) }]),
  ]);
  await ingest(namespace, eventId);
  const id = deliveryId(namespace, eventId, "hook");
  const keys = dispatcher!.keys;
  await eventually(
    async () => ((await archivedRows(url)).get(id)?.phase === "SENT" ? true : undefined),
    20_000,
    "archived SENT",
  );
  await eventually(
    async () => ((await redis.exists(keys.delivery(id))) === 0 ? true : undefined),
    10_000,
    "gone from Redis",
  );
  return { url, id, keys };
}

async function backlogMetric(): Promise<number> {
  const response = await fetch(`${dispatcher!.url}/metrics`);
  const line = (await response.text())
    .split("\n")
    .find((l) => l.startsWith("dataforce_dispatcher_archive_backlog "));
  return Number(line?.split(" ")[1]);
}

/** An event of one webhook as format 1's fan-out was given it (see contract/format-upgrade.int.test.ts). */
function v1Event(namespace: string, id: string, webhook: string, ingestedAt: number): V1Event {
  const occurredAt = new Date(ingestedAt).toISOString();
  const data = JSON.stringify({ ref: id });
  const payload = notificationPayload({
    eventId: id,
    type: "job.created",
    occurredAt,
    namespace,
    webhook,
    dataJson: data,
  });
  return {
    namespace,
    id,
    type: "job.created",
    occurredAt,
    ingestedAt,
    data,
    deliveries: [
      {
        id: deliveryId(namespace, id, webhook),
        webhook,
        uid: `uid-${webhook}`,
        url: receiver.url(`/archive-v1-${webhook}`),
        payload,
        maxAttempts: 3,
      },
    ],
  };
}

let paths = 0;
const uniquePath = (name: string) => `/archive-${name}-${++paths}`;

describe("durable log store (PostgreSQL)", () => {
  it("archives SENT and FAILED deliveries with payload and attempts; Redis keeps them only for the hot window; the log API then serves them from Postgres", async () => {
    const url = await freshDatabase();
    const ok = uniquePath("ok");
    const bad = uniquePath("bad");
    receiver.on(bad, { kind: "respond", status: 500 });
    await start(url, [
      testRouting("arch-a", [
        { name: "ok", uid: "u1", event: "job.created", url: receiver.url(ok) },
        { name: "bad", uid: "u2", event: "job.created", url: receiver.url(bad) },
      ]),
    ]);
    await ingest("arch-a", "evt-1", { jobId: "j-1" });
    const sent = deliveryId("arch-a", "evt-1", "ok");
    const failed = deliveryId("arch-a", "evt-1", "bad");
    const store = storeOf(url);
    await eventually(
      async () => {
        const rows = await archivedRows(url);
        return rows.get(sent)?.phase === "SENT" && rows.get(failed)?.phase === "FAILED" ? true : undefined;
      },
      20_000,
      "both archived",
    );
    const [request] = receiver.requests(ok);
    const archivedSent = await store.get(sent);
    expect(archivedSent?.record.payload).toBe(request!.body);
    const archivedFailed = await store.get(failed);
    expect(archivedFailed?.record.attempts.map((attempt) => attempt.statusCode)).toEqual([500, 500, 500]);
    expect(archivedFailed?.record.failureReason).toBe("attempts-exhausted");
    expect(await redis.zcard(dispatcher!.keys.archivePending)).toBe(0);

    // the hot window (1 s) passes: Redis drops the records, and the event's
    await eventually(
      async () =>
        (await redis.exists(dispatcher!.keys.delivery(sent), dispatcher!.keys.delivery(failed))) === 0
          ? true
          : undefined,
      10_000,
      "records gone from Redis",
    );
    // the event record is kept for the event id's idempotency window (24 h here), no longer than
    // that once both its deliveries are archived (its retention was the log's, 7 days)
    const eventTtl = await redis.pttl(dispatcher!.keys.event("arch-a", "evt-1"));
    expect(eventTtl).toBeGreaterThan(23 * 3_600_000);
    expect(eventTtl).toBeLessThanOrEqual(24 * 3_600_000);

    const items = await listAll("arch-a", 50);
    expect(items.map((item) => [item.id, item.phase]).sort()).toEqual(
      [
        [failed, "FAILED"],
        [sent, "SENT"],
      ].sort(),
    );
    const detail = await api(dispatcher!.url, "GET", `/v1/deliveries/${failed}`);
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({
      id: failed,
      phase: "FAILED",
      payload: archivedFailed!.record.payload,
    });
    expect((detail.body as { attempts: unknown[] }).attempts).toHaveLength(3);
    const failedOnly = await api(dispatcher!.url, "GET", "/v1/deliveries?namespace=arch-a&phase=FAILED");
    expect((failedOnly.body as { items: DeliverySummary[] }).items.map((item) => item.id)).toEqual([failed]);
    const badCursor = await api(dispatcher!.url, "GET", "/v1/deliveries?namespace=arch-a&cursor=Anot-json");
    expect(badCursor).toMatchObject({ status: 400, body: { error: { code: "INVALID_REQUEST" } } });
    // a time no Date can hold: refused as a bad cursor, not taken for the store being down (503)
    const farCursor = `A${Buffer.from(JSON.stringify([null, [9e15, "x"], null])).toString("base64url")}`;
    expect(
      await api(dispatcher!.url, "GET", `/v1/deliveries?namespace=arch-a&cursor=${farCursor}`),
    ).toMatchObject({ status: 400, body: { error: { code: "INVALID_REQUEST" } } });

    // another namespace's event log token: what only Postgres has is as absent for it as Redis's
    const otherToken = "other-namespace-log-token-0123456789";
    await routeNamespaces(redis, dispatcher!, [
      testRouting("arch-other", [], { eventLogTokenDigests: [tokenDigest(otherToken)] }),
    ]);
    expect(
      await api(dispatcher!.url, "GET", `/v1/deliveries/${failed}`, undefined, otherToken),
    ).toMatchObject({
      status: 404,
    });
    expect(
      await api(dispatcher!.url, "POST", `/v1/deliveries/${failed}/retry`, { token: "x" }, otherToken),
    ).toMatchObject({ status: 404 });
    const confined = await api(dispatcher!.url, "GET", "/v1/deliveries", undefined, otherToken);
    expect((confined.body as { items: DeliverySummary[] }).items).toEqual([]);
  });

  it.each([1, 3])(
    "lists every delivery exactly once across Redis and Postgres, page by page (%i partitions)",
    async (partitions) => {
      const url = await freshDatabase();
      const path = uniquePath("many");
      await start(
        url,
        [testRouting("arch-b", [{ name: "ok", uid: "u1", event: "job.created", url: receiver.url(path) }])],
        { partitions },
      );
      const home = dispatcher!.partitions.of("arch-b");
      for (let i = 0; i < 6; i++) await ingest("arch-b", `old-${i}`);
      const old = Array.from({ length: 6 }, (_, i) => deliveryId("arch-b", `old-${i}`, "ok"));
      await eventually(
        async () => ((await redis.exists(...old.map((id) => home.delivery(id)))) === 0 ? true : undefined),
        20_000,
        "old deliveries archived and gone from Redis",
      );
      // newer ones still in Redis (hot), with a receiver that holds them QUEUED
      receiver.on(path, { kind: "respond", status: 503 });
      for (let i = 0; i < 5; i++) await ingest("arch-b", `new-${i}`);
      const fresh = Array.from({ length: 5 }, (_, i) => deliveryId("arch-b", `new-${i}`, "ok"));
      for (const limit of [1, 2, 4, 50]) {
        const ids = (await listAll("arch-b", limit)).map((item) => item.id);
        expect(new Set(ids).size, `limit ${limit}: no duplicates`).toBe(ids.length);
        expect([...ids].sort(), `limit ${limit}`).toEqual([...old, ...fresh].sort());
      }
      receiver.on(path, { kind: "respond", status: 200 });
    },
  );

  it("a delivery held QUEUED past the hot window (an auto-paused webhook) does not hold the index horizon back: written to Postgres as it stands, listed once, archived again when done", async () => {
    const url = await freshDatabase();
    const held = uniquePath("held");
    const ok = uniquePath("ok");
    const webhooks = (autoPaused: boolean) => [
      { name: "held", uid: "u1", event: "job.created" as const, url: receiver.url(held), autoPaused },
      { name: "ok", uid: "u2", event: "job.created" as const, url: receiver.url(ok) },
    ];
    await start(url, [testRouting("arch-h", webhooks(true))], { autoPausedRecheckMs: 200 });
    const keys = dispatcher!.keys;
    await ingest("arch-h", "evt-h");
    const heldId = deliveryId("arch-h", "evt-h", "held");
    const createdAt = Date.parse((await eventually(() => readDelivery(redis, heldId, keys)))!.createdAt);

    // the hot window (1 s) passes with the delivery still QUEUED: the horizon goes past it
    await eventually(
      async () => (Number(await redis.get(keys.archiveHorizon)) > createdAt ? true : undefined),
      15_000,
      "the horizon past the held delivery",
    );
    expect((await archivedRows(url)).get(heldId)?.phase).toBe("QUEUED");
    expect(await redis.zscore(keys.archiveOpen, heldId)).toBeNull();
    for (const limit of [1, 50]) {
      const items = await listAll("arch-h", limit);
      expect(items.filter((item) => item.id === heldId).map((item) => item.phase)).toEqual(["QUEUED"]);
      expect(items).toHaveLength(2);
    }
    const queued = await api(dispatcher!.url, "GET", "/v1/deliveries?namespace=arch-h&phase=QUEUED");
    expect((queued.body as { items: DeliverySummary[] }).items.map((item) => item.id)).toEqual([heldId]);
    expect(receiver.requests(held)).toHaveLength(0);

    // resumed: delivered, and archived again in its final version
    await routeNamespaces(redis, dispatcher!, [testRouting("arch-h", webhooks(false))]);
    await receiver.waitForRequests(1, held);
    await eventually(
      async () => ((await archivedRows(url)).get(heldId)?.phase === "SENT" ? true : undefined),
      15_000,
      "archived SENT",
    );
    const items = await listAll("arch-h", 50);
    expect(items.filter((item) => item.id === heldId).map((item) => item.phase)).toEqual(["SENT"]);
  });

  it("a delivery Postgres has only as it stood QUEUED, whose record Redis then lost, is answered 'missing' to the mirror, not brought back", async () => {
    const url = await freshDatabase();
    await start(
      url,
      [
        testRouting("arch-q", [
          {
            name: "held",
            uid: "u1",
            event: "job.created",
            url: receiver.url(uniquePath("q")),
            autoPaused: true,
          },
        ]),
      ],
      { autoPausedRecheckMs: 200 },
    );
    const keys = dispatcher!.keys;
    await ingest("arch-q", "evt-q");
    const id = deliveryId("arch-q", "evt-q", "held");
    await eventually(
      async () => ((await archivedRows(url)).get(id)?.phase === "QUEUED" ? true : undefined),
      15_000,
      "written as it stands",
    );
    // Redis loses the record while it is still active: the store's QUEUED row is no final state
    await redis.del(keys.delivery(id));
    await requestStatus(redis, keys, { deliveryId: id, namespace: "arch-q" });
    await eventually(
      async () =>
        (await answeredMissing(redis, keys, { deliveryId: id, namespace: "arch-q" })) ? true : undefined,
      10_000,
      "answered missing",
    );
    expect(await redis.exists(keys.delivery(id))).toBe(0);
  });

  it("archives the deliveries Redis already had when the store is configured", async () => {
    const path = uniquePath("adopt");
    const keyTag = `t-${randomUUID().slice(0, 8)}`;
    const routing = testRouting("arch-f", [
      { name: "hook", uid: "u1", event: "job.created", url: receiver.url(path) },
    ]);
    // first without a store
    dispatcher = await startDispatcher(testSettings(inject("redisUrl"), { keyTag }));
    await routeNamespaces(redis, dispatcher!, [routing]);
    for (let i = 0; i < 3; i++) await ingest("arch-f", `before-${i}`);
    await receiver.waitForRequests(3, path);
    await dispatcher.stop();
    dispatcher = undefined;
    // then with one: the three are adopted and archived
    const url = await freshDatabase();
    await start(url, [routing], { keyTag });
    const ids = Array.from({ length: 3 }, (_, i) => deliveryId("arch-f", `before-${i}`, "hook"));
    await eventually(
      async () => {
        const rows = await archivedRows(url);
        return ids.every((id) => rows.get(id)?.phase === "SENT") ? true : undefined;
      },
      20_000,
      "adopted and archived",
    );
  });

  it("archives with their payload the format 1 deliveries only its sorted set index lists, and lists them from Postgres once Redis has dropped them", async () => {
    const keyTag = uniqueKeyTag();
    const keys = keyspace(keyTag);
    const ns = "arch-g";
    const t0 = Date.now() - 60_000;
    // written by format 1's own scripts: hashes carrying their payload, indexed in `log` only
    const events = ["ok", "bad"].map((webhook) => v1Event(ns, `evt-${webhook}`, webhook, t0));
    expect(await v1Fanout(redis, keys, events, t0)).toEqual([1, 1]);
    const [sent, failed] = events.map((event) => event.deliveries[0]!);
    const v1Attempt = (statusCode: number) => ({
      number: 1,
      startedAt: new Date(t0 + 10).toISOString(),
      durationMs: 3,
      statusCode,
      errorCode: statusCode === 200 ? undefined : "http_status",
    });
    const outcomes = [
      { id: sent!.id, version: 0, kind: "sent" as const, attempt: v1Attempt(200) },
      { id: failed!.id, version: 0, kind: "failed" as const, attempt: v1Attempt(500) },
    ];
    for (const outcome of outcomes) expect(await v1Settle(redis, keys, outcome, t0 + 10)).toBe("a");
    expect(await redis.zcard(keys.legacyLog.all)).toBe(2);
    expect(await redis.exists(keys.logAll)).toBe(0);

    const url = await freshDatabase();
    await start(url, [testRouting(ns, [])], { keyTag });
    const ids = [sent!.id, failed!.id];
    await eventually(
      async () => {
        const rows = await archivedRows(url);
        return rows.get(sent!.id)?.phase === "SENT" && rows.get(failed!.id)?.phase === "FAILED"
          ? true
          : undefined;
      },
      20_000,
      "format 1 deliveries adopted and archived",
    );
    const store = storeOf(url);
    for (const delivery of [sent!, failed!]) {
      const archived = await store.get(delivery.id);
      expect(archived?.record).toMatchObject({
        payload: delivery.payload,
        url: delivery.url,
        maxAttempts: 3,
      });
    }
    expect((await store.get(failed!.id))?.record.attempts.map((a) => a.statusCode)).toEqual([500]);

    // the hot window passes: Redis drops the hashes; the log API lists and shows them from Postgres
    await eventually(
      async () => ((await redis.exists(...ids.map((id) => keys.delivery(id)))) === 0 ? true : undefined),
      10_000,
      "format 1 records gone from Redis",
    );
    const items = await listAll(ns, 1);
    expect(items.map((item) => [item.id, item.phase]).sort()).toEqual(
      [
        [failed!.id, "FAILED"],
        [sent!.id, "SENT"],
      ].sort(),
    );
    const detail = await api(dispatcher!.url, "GET", `/v1/deliveries/${sent!.id}`);
    expect(detail).toMatchObject({
      status: 200,
      body: { id: sent!.id, phase: "SENT", payload: sent!.payload },
    });
  });

  it("adopts every member of a format 1 index longer than a page, a fan-out's deliveries sharing one score", async () => {
    const keys = keyspace(uniqueKeyTag());
    const t0 = Date.now() - 60_000;
    // 1,200 at one score (more than a page), and 1,300 at scores of their own on either side
    const members: Array<string | number> = [];
    for (let i = 0; i < 2_500; i++) members.push(i < 600 ? t0 + i : i < 1_800 ? t0 + 600 : t0 + i, `d-${i}`);
    await redis.zadd(keys.legacyLog.all, ...members);
    const archiver = new Archiver({
      redis,
      partitions: onePartition(keys),
      store: storeOf(await freshDatabase()),
      consumer: "test",
      hotWindowMs: 1_000,
      batchSize: 100,
      intervalMs: 100,
      limits: { statusStreamMaxLen: 1_000 },
      metrics: createMetrics(async () => null),
      logger: pino({ level: "silent" }),
    });
    await archiver.adoptExisting(keys);
    expect(await redis.zcard(keys.archivePending)).toBe(2_500);
    expect(await redis.zscore(keys.archivePending, "d-1799")).toBe(String(t0 + 600));
    expect(await redis.zscore(keys.archivePending, "d-2499")).toBe(String(t0 + 2_499));
    expect(await redis.exists(keys.archiveAdopted)).toBe(1);
  });

  it("a FAILED delivery that only Postgres still has is retried: back into Redis, delivered again, the token honoured once", async () => {
    const url = await freshDatabase();
    const path = uniquePath("retry");
    let answer = 500;
    receiver.on(path, () => ({ kind: "respond", status: answer }));
    await start(url, [
      testRouting("arch-c", [{ name: "hook", uid: "u1", event: "job.created", url: receiver.url(path) }]),
    ]);
    await ingest("arch-c", "evt-r", { jobId: "j-r" });
    const id = deliveryId("arch-c", "evt-r", "hook");
    await eventually(
      async () => ((await archivedRows(url)).get(id)?.phase === "FAILED" ? true : undefined),
      20_000,
      "archived FAILED",
    );
    await eventually(
      async () => ((await redis.exists(dispatcher!.keys.delivery(id))) === 0 ? true : undefined),
      10_000,
      "gone from Redis",
    );
    answer = 200;
    const retried = await api(dispatcher!.url, "POST", `/v1/deliveries/${id}/retry`, { token: "t-1" });
    expect(retried).toMatchObject({ status: 202, body: { outcome: "requeued" } });
    const requests = await receiver.waitForRequests(4, path);
    expect(requests[3]!.headers["webhook-id"]).toBe(id);
    expect(requests[3]!.body).toBe(requests[0]!.body);
    await eventually(
      async () => ((await archivedRows(url)).get(id)?.phase === "SENT" ? true : undefined),
      20_000,
      "archived again as SENT",
    );
    const again = await api(dispatcher!.url, "POST", `/v1/deliveries/${id}/retry`, { token: "t-1" });
    expect(again).toMatchObject({ status: 200, body: { outcome: "already-honoured" } });
    const detail = await api(dispatcher!.url, "GET", `/v1/deliveries/${id}`);
    expect(detail.body).toMatchObject({ phase: "SENT", cycle: 2, lastRetryToken: "t-1" });
  });

  it("serves the operator's retry of a delivery only Postgres has (a restore request): back into Redis, sent again, the token once, never across namespaces", async () => {
    const url = await freshDatabase();
    const path = uniquePath("restore");
    let answer = 500;
    receiver.on(path, () => ({ kind: "respond", status: answer }));
    await start(url, [
      testRouting("arch-r", [{ name: "hook", uid: "u1", event: "job.created", url: receiver.url(path) }]),
    ]);
    await ingest("arch-r", "evt-rr");
    const id = deliveryId("arch-r", "evt-rr", "hook");
    const keys = dispatcher!.keys;
    await eventually(
      async () => ((await archivedRows(url)).get(id)?.phase === "FAILED" ? true : undefined),
      20_000,
      "archived FAILED",
    );
    await eventually(
      async () => ((await redis.exists(keys.delivery(id))) === 0 ? true : undefined),
      10_000,
      "gone from Redis",
    );
    // the store is on: the dispatchers said so when they started archiving
    expect(await archivesToStore(redis, keys)).toBe(true);
    answer = 200;
    // what the operator does for a retry annotation it cannot serve from Redis
    await requestRestore(redis, keys, { deliveryId: id, token: "ann-1", namespace: "other-namespace" });
    await requestRestore(redis, keys, { deliveryId: id, token: "ann-1", namespace: "arch-r" });
    await requestRestore(redis, keys, { deliveryId: id, token: "ann-1", namespace: "arch-r" });
    const requests = await receiver.waitForRequests(4, path);
    expect(requests[3]!.headers["webhook-id"]).toBe(id);
    await eventually(
      async () => ((await readRestoreRequests(redis, keys, 10)).length === 0 ? true : undefined),
      10_000,
      "requests served",
    );
    await eventually(
      async () => ((await archivedRows(url)).get(id)?.phase === "SENT" ? true : undefined),
      20_000,
      "archived again as SENT",
    );
    // the other namespace's request found nothing, the repeated token requeued nothing more
    expect(receiver.requests(path)).toHaveLength(4);
  });

  it("answers the mirror's status requests: what the store has back in Redis for the hot window with a status entry, 'missing' for what it lacks or another namespace asks; Postgres down, the request waits", async () => {
    const { url, id, keys } = await oneSentOnlyInStore("arch-s", "evt-s");
    // the settle script's entry for it: the answer's must read the same
    const settled = ((await redis.xrange(keys.status, "-", "+")) as Array<[string, string[]]>).find(
      ([, fields]) => fields.includes(id) && fields.includes("SENT"),
    );
    expect(settled).toBeDefined();
    // the running dispatcher out of the way: this test's archiver answers, with a hot window it can see
    await dispatcher!.stop();
    dispatcher = undefined;
    const archiver = new Archiver({
      redis,
      partitions: onePartition(keys),
      store: storeOf(url),
      consumer: "status-test",
      hotWindowMs: 60_000,
      limits: { statusStreamMaxLen: 1_000 },
      batchSize: 10,
      intervalMs: 1_000,
      metrics: createMetrics(async () => null),
      logger: pino({ level: "silent" }),
    });
    const lastStatusEntry = async () =>
      ((await redis.xrevrange(keys.status, "+", "-", "COUNT", 1)) as Array<[string, string[]]>)[0]!;
    const before = await lastStatusEntry();

    // another namespace asks about it, and about one the store never had: not served, "missing"
    const lacking = deliveryId("arch-s", "evt-never", "hook");
    await requestStatus(redis, keys, { deliveryId: id, namespace: "arch-other" });
    await requestStatus(redis, keys, { deliveryId: lacking, namespace: "arch-s" });
    await redis.xadd(keys.archiveStatusRequests, "*", "garbage", "1");
    expect(await archiver.serveStatusRequests(keys)).toBe(3);
    expect(await readStatusRequests(redis, keys, 10)).toEqual([]);
    expect(await redis.exists(keys.delivery(id))).toBe(0);
    expect((await lastStatusEntry())[0]).toBe(before[0]);
    expect(await answeredMissing(redis, keys, { deliveryId: id, namespace: "arch-other" })).toBe(true);
    expect(await answeredMissing(redis, keys, { deliveryId: lacking, namespace: "arch-s" })).toBe(true);
    expect(await answeredMissing(redis, keys, { deliveryId: id, namespace: "arch-s" })).toBe(false);
    const answerTtl = await redis.pttl(keys.archiveMissing("arch-s", lacking));
    expect(answerTtl).toBeGreaterThan(MISSING_ANSWER_TTL_MS - 60_000);
    expect(answerTtl).toBeLessThanOrEqual(MISSING_ANSWER_TTL_MS);

    // its own namespace asks: back in Redis for the hot window (not the retention), a status entry
    await requestStatus(redis, keys, { deliveryId: id, namespace: "arch-s" });
    expect(await archiver.serveStatusRequests(keys)).toBe(1);
    expect(await readStatusRequests(redis, keys, 10)).toEqual([]);
    const ttl = await redis.pttl(keys.delivery(id));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    const restored = await readDelivery(redis, id, keys);
    expect(restored).toMatchObject({ id, phase: "SENT", namespace: "arch-s" });
    expect(restored?.attempts.map((attempt) => attempt.statusCode)).toEqual([200]);
    const [entryId, fields] = await lastStatusEntry();
    expect(entryId).not.toBe(before[0]);
    // the settle script's fields, and the time of the change (not of the answer)
    expect(fields).toEqual([...settled![1], "at", restored!.updatedAt]);
    expect(parseStatusEntry(entryId, fields)).toMatchObject({
      deliveryId: id,
      phase: "SENT",
      namespace: "arch-s",
      webhook: "hook",
      eventId: "evt-s",
      attempts: 1,
      at: restored!.updatedAt,
    });
    // asked again while Redis has it: no second entry (the mirror reads Redis's record)
    await requestStatus(redis, keys, { deliveryId: id, namespace: "arch-s" });
    expect(await archiver.serveStatusRequests(keys)).toBe(1);
    expect((await lastStatusEntry())[0]).toBe(entryId);

    // Postgres down: the request waits, nothing is answered
    await redis.del(keys.delivery(id));
    await postgresServer.stop();
    try {
      await requestStatus(redis, keys, { deliveryId: id, namespace: "arch-s" });
      await expect(archiver.serveStatusRequests(keys)).rejects.toBeInstanceOf(ArchiveUnavailableError);
      expect((await readStatusRequests(redis, keys, 10)).map((entry) => entry.request)).toEqual([
        { deliveryId: id, namespace: "arch-s" },
      ]);
      expect(await redis.exists(keys.delivery(id))).toBe(0);
      expect(await answeredMissing(redis, keys, { deliveryId: id, namespace: "arch-s" })).toBe(false);
    } finally {
      await postgresServer.start();
    }
    // back: answered in a later round
    await eventually(
      async () => ((await archiver.serveStatusRequests(keys).catch(() => 0)) === 1 ? true : undefined),
      20_000,
      "answered once Postgres is back",
    );
    expect((await readDelivery(redis, id, keys))?.phase).toBe("SENT");
  }, 60_000);

  it("a request for a row the store cannot read (another version's) is given up, and holds up neither the requests behind it nor the other steps", async () => {
    const { url, id, keys } = await oneSentOnlyInStore("arch-u", "evt-u");
    const reader = storeOf(url);
    await reader.sql`update dataforce_deliveries set record = '{"written":"by another version"}'::jsonb where id = ${id}`;

    await requestRestore(redis, keys, { deliveryId: id, token: "unreadable-1", namespace: "arch-u" });
    await requestStatus(redis, keys, { deliveryId: id, namespace: "arch-u" });
    const lacking = deliveryId("arch-u", "evt-never", "hook");
    await requestStatus(redis, keys, { deliveryId: lacking, namespace: "arch-u" });
    await eventually(
      async () =>
        (await answeredMissing(redis, keys, { deliveryId: lacking, namespace: "arch-u" })) ? true : undefined,
      10_000,
      "the request behind answered",
    );
    await eventually(
      async () =>
        (await readRestoreRequests(redis, keys, 10)).length === 0 &&
        (await readStatusRequests(redis, keys, 10)).length === 0
          ? true
          : undefined,
      10_000,
      "the unreadable ones given up",
    );
    // given up, not answered: the mirror asks again later, and nothing was brought back
    expect(await answeredMissing(redis, keys, { deliveryId: id, namespace: "arch-u" })).toBe(false);
    expect(await redis.exists(keys.delivery(id))).toBe(0);
    // the other steps go on: a new delivery is archived
    await ingest("arch-u", "evt-u2");
    const next = deliveryId("arch-u", "evt-u2", "hook");
    await eventually(
      async () => ((await archivedRows(url)).get(next)?.phase === "SENT" ? true : undefined),
      20_000,
      "archived SENT after",
    );
  });

  it("retries by filter the FAILED deliveries only Postgres still has, each once per token", async () => {
    const url = await freshDatabase();
    const path = uniquePath("bulk");
    let answer = 500;
    receiver.on(path, () => ({ kind: "respond", status: answer }));
    await start(url, [
      testRouting("arch-bulk", [{ name: "hook", uid: "u1", event: "job.created", url: receiver.url(path) }], {
        // nine failures in a row: the circuit breaker would hold them instead of letting them fail
        delivery: {
          maxAttempts: 3,
          timeoutMs: 1_000,
          backoff: { initialDelayMs: 20, maxDelayMs: 200, multiplier: 2 },
          circuitBreaker: { consecutiveFailures: 0 },
        },
      }),
    ]);
    const ids = ["evt-b1", "evt-b2", "evt-b3"].map((event) => deliveryId("arch-bulk", event, "hook"));
    for (const event of ["evt-b1", "evt-b2", "evt-b3"]) await ingest("arch-bulk", event);
    await eventually(
      async () => {
        const rows = await archivedRows(url);
        return ids.every((id) => rows.get(id)?.phase === "FAILED") ? true : undefined;
      },
      20_000,
      "archived FAILED",
    );
    await eventually(
      async () =>
        (await redis.exists(...ids.map((id) => dispatcher!.keys.delivery(id)))) === 0 ? true : undefined,
      10_000,
      "gone from Redis",
    );
    answer = 200;
    const filter = { namespace: "arch-bulk", webhook: "hook", token: "bulk-1" };
    const retried = await api(dispatcher!.url, "POST", "/v1/deliveries/retry", filter);
    expect(retried).toMatchObject({ status: 202, body: { requeued: 3, alreadyHonoured: 0, notFound: 0 } });
    const requests = await receiver.waitForRequests(9, path);
    expect(new Set(requests.slice(6).map((r) => r.headers["webhook-id"]))).toEqual(new Set(ids));
    // the same token again: each delivery is SENT now (in Redis or the store), nothing requeued
    const again = await api(dispatcher!.url, "POST", "/v1/deliveries/retry", filter);
    expect(again).toMatchObject({ status: 202, body: { requeued: 0 } });
  });

  it("GET /v1/events/{namespace}/{id} answers from Postgres once Redis no longer has the event record: the same body; another namespace, an unknown id 404; Postgres down 503", async () => {
    const url = await freshDatabase();
    const path = uniquePath("event");
    const otherToken = "other-namespace-log-token-0123456789";
    await start(url, [
      testRouting("arch-ev", [
        // by name, as the operator writes them
        { name: "alpha", uid: "u1", event: "job.created", url: receiver.url(path) },
        { name: "beta", uid: "u2", event: "job.created", url: receiver.url(path) },
        { name: "other-type", uid: "u3", event: "job.updated", url: receiver.url(path) },
      ]),
      testRouting("arch-ev-other", [], { eventLogTokenDigests: [tokenDigest(otherToken)] }),
    ]);
    const data = { jobId: "j-ev", note: 'café "quoted"\n\t}', nested: { list: [1, {}] } };
    const posted = await api(dispatcher!.url, "POST", "/v1/events", {
      type: "job.created",
      namespace: "arch-ev",
      id: "evt-view",
      occurredAt: "2026-01-02T03:04:05.678+01:00",
      data,
    });
    expect(posted.status).toBe(202);
    const ids = ["alpha", "beta"].map((webhook) => deliveryId("arch-ev", "evt-view", webhook));
    const eventKey = dispatcher!.partitions.of("arch-ev").event("arch-ev", "evt-view");
    const fromRedis = await api(dispatcher!.url, "GET", "/v1/events/arch-ev/evt-view");
    expect(fromRedis).toMatchObject({
      status: 200,
      body: {
        id: "evt-view",
        routing: "routed",
        deliveryIds: ids,
        occurredAt: "2026-01-02T03:04:05.678+01:00",
      },
    });
    expect(JSON.parse((fromRedis.body as { data: string }).data)).toEqual(data);

    await eventually(
      async () => {
        const rows = await archivedRows(url);
        return ids.every((id) => rows.get(id)?.phase === "SENT") ? true : undefined;
      },
      20_000,
      "both archived",
    );
    // beside them in the store: a replay's copy (not in the event record) and the deliveries of an
    // earlier event with the same id (made again after its idempotency window)
    const store = storeOf(url);
    const archivedAlpha = (await store.get(ids[0]!))!;
    const day = 86_400_000;
    const earlier = new Date(Date.parse(archivedAlpha.record.createdAt) - 2 * day).toISOString();
    const copyId = copyDeliveryId("arch-ev", ids[0]!, "gamma", "replay-1");
    await store.write([
      { ...archivedAlpha, record: { ...archivedAlpha.record, id: copyId, webhook: "gamma" } },
      {
        ...archivedAlpha,
        record: {
          ...archivedAlpha.record,
          id: deliveryId("arch-ev", "evt-view", "gamma"),
          webhook: "gamma",
          createdAt: earlier,
          ingestedAt: earlier,
          updatedAt: earlier,
        },
      },
    ]);
    // the hot window passes, and then the event record goes (as it does after its window)
    await eventually(
      async () =>
        (await redis.exists(...ids.map((id) => dispatcher!.keys.delivery(id)))) === 0 ? true : undefined,
      10_000,
      "records gone from Redis",
    );
    expect(await redis.del(eventKey)).toBe(1);

    const fromStore = await api(dispatcher!.url, "GET", "/v1/events/arch-ev/evt-view");
    expect(fromStore).toEqual(fromRedis);
    // confined as ever: another namespace's token, and the id under another namespace, see nothing
    expect(
      await api(dispatcher!.url, "GET", "/v1/events/arch-ev/evt-view", undefined, otherToken),
    ).toMatchObject({ status: 404, body: { error: { code: "EVENT_NOT_FOUND" } } });
    expect(await api(dispatcher!.url, "GET", "/v1/events/arch-ev-other/evt-view")).toMatchObject({
      status: 404,
    });
    expect(await api(dispatcher!.url, "GET", "/v1/events/arch-ev/unknown")).toMatchObject({
      status: 404,
      body: { error: { code: "EVENT_NOT_FOUND" } },
    });

    readers.clear();
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await postgresServer.stop();
    try {
      // Redis is read first: an event it has is shown without Postgres
      await ingest("arch-ev", "evt-live");
      expect(await api(dispatcher!.url, "GET", "/v1/events/arch-ev/evt-live")).toMatchObject({
        status: 200,
        body: { id: "evt-live" },
      });
      expect(await api(dispatcher!.url, "GET", "/v1/events/arch-ev/evt-view")).toMatchObject({
        status: 503,
        body: { error: { code: "UNAVAILABLE" } },
      });
    } finally {
      await postgresServer.start();
    }
  }, 60_000);

  it("survives Postgres being down: the backlog grows in Redis and in the metric, nothing is lost, all is archived after the restart", async () => {
    const url = await freshDatabase();
    const path = uniquePath("outage");
    await start(url, [
      testRouting("arch-d", [{ name: "hook", uid: "u1", event: "job.created", url: receiver.url(path) }]),
    ]);
    await ingest("arch-d", "before");
    await eventually(
      async () => ((await archivedRows(url)).size === 1 ? true : undefined),
      20_000,
      "first archived",
    );
    readers.clear();
    await Promise.all(stores.splice(0).map((store) => store.close()));

    await postgresServer.stop();
    try {
      const count = 20;
      for (let i = 0; i < count; i++) await ingest("arch-d", `during-${i}`);
      await receiver.waitForRequests(count + 1, path);
      await eventually(
        async () => ((await backlogMetric()) === count ? true : undefined),
        10_000,
        "backlog metric",
      );
      expect(await redis.zcard(dispatcher!.keys.archivePending)).toBe(count);
      // still there well past the hot window: only archiving cuts a record's TTL
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      for (let i = 0; i < count; i++)
        expect(
          await redis.exists(dispatcher!.keys.delivery(deliveryId("arch-d", `during-${i}`, "hook"))),
        ).toBe(1);
      // the log API cannot list what only Postgres has: 503, retried by the caller
      const listing = await api(dispatcher!.url, "GET", "/v1/deliveries?namespace=arch-d");
      expect(listing).toMatchObject({ status: 503, body: { error: { code: "UNAVAILABLE" } } });
      const errors = await fetch(`${dispatcher!.url}/metrics`).then((r) => r.text());
      expect(errors).toMatch(/dataforce_dispatcher_archive_errors_total [1-9]/);
    } finally {
      await postgresServer.start();
    }
    await eventually(
      async () => ((await archivedRows(url)).size === 21 ? true : undefined),
      30_000,
      "all archived",
    );
    await eventually(
      async () => ((await backlogMetric()) === 0 ? true : undefined),
      10_000,
      "backlog drained",
    );
    const rows = await archivedRows(url);
    expect([...rows.values()].every((row) => row.phase === "SENT")).toBe(true);
  }, 90_000);
});

describe("archive store", () => {
  function archived(
    id: string,
    createdAt: number,
    version: number,
    phase: "SENT" | "FAILED" = "SENT",
  ): ArchivedDelivery {
    const iso = new Date(createdAt).toISOString();
    return {
      record: {
        id,
        eventId: `evt-${id}`,
        eventType: "job.created",
        namespace: "ns",
        webhook: "hook",
        webhookUid: "uid",
        url: "https://example.test/hook",
        payload: `{"id":"evt-${id}"}`,
        phase,
        attempts: [{ number: 1, startedAt: iso, durationMs: 3, statusCode: phase === "SENT" ? 200 : 500 }],
        maxAttempts: 3,
        cycle: 1,
        cycleAttempts: 1,
        occurredAt: iso,
        ingestedAt: iso,
        createdAt: iso,
        updatedAt: iso,
        version,
      },
      retryTokens: [],
    };
  }

  it("writes idempotently: the same batch twice, or an older version, changes nothing", async () => {
    const store = storeOf(await freshDatabase());
    await store.migrate();
    const now = Date.now();
    const batch = [archived("a", now - 1_000, 3), archived("b", now - 2_000, 2, "FAILED")];
    await store.write(batch);
    await store.write(batch);
    expect(await store.count()).toBe(2);
    await store.write([archived("a", now - 1_000, 1, "FAILED")]);
    expect((await store.get("a"))?.record).toMatchObject({ phase: "SENT", version: 3 });
    await store.write([archived("a", now - 1_000, 4, "FAILED")]);
    expect((await store.get("a"))?.record).toMatchObject({ phase: "FAILED", version: 4 });
  });

  it("two archivers on the same pending deliveries archive each once", async () => {
    const url = await freshDatabase();
    const path = uniquePath("two");
    // the dispatcher's own archiver stays out: another consumer holds the partition's lease
    const keyTag = `t-${randomUUID().slice(0, 8)}`;
    await redis.set(`{${keyTag}}:archive:lease`, "someone-else", "PX", 120_000);
    await start(
      url,
      [testRouting("arch-e", [{ name: "hook", uid: "u1", event: "job.created", url: receiver.url(path) }])],
      { keyTag },
    );
    for (let i = 0; i < 10; i++) await ingest("arch-e", `e-${i}`);
    await receiver.waitForRequests(10, path);
    await eventually(
      async () => ((await redis.zcard(dispatcher!.keys.archivePending)) === 10 ? true : undefined),
      10_000,
      "pending",
    );
    const archiver = (consumer: string) =>
      new Archiver({
        redis,
        partitions: dispatcher!.partitions,
        store: storeOf(url),
        consumer,
        hotWindowMs: 60_000,
        limits: { statusStreamMaxLen: 1_000 },
        batchSize: 4,
        intervalMs: 1_000,
        metrics: createMetrics(async () => null),
        logger: pino({ level: "silent" }),
      });
    const [one, two] = [archiver("one"), archiver("two")];
    const keys = dispatcher!.partitions.global;
    const counts = await Promise.all([one.archivePartition(keys), two.archivePartition(keys)]);
    expect(counts[0]! + counts[1]!).toBeGreaterThanOrEqual(10);
    expect((await archivedRows(url)).size).toBe(10);
    expect(await redis.zcard(keys.archivePending)).toBe(0);
  });

  it("retention drops whole day partitions and keeps the recent ones", async () => {
    const url = await freshDatabase();
    const day = 86_400_000;
    const now = Date.now();
    const wide = storeOf(url, 30);
    await wide.migrate();
    await wide.write([
      archived("old", now - 10 * day, 1),
      archived("recent", now - day, 1),
      archived("today", now, 1),
    ]);
    expect(await wide.count()).toBe(3);
    const narrow = storeOf(url, 3);
    expect(await narrow.dropExpired(now)).toEqual([partitionName(now - 10 * day)]);
    expect(await narrow.count()).toBe(2);
    expect(await narrow.get("old")).toBeNull();
    expect(await narrow.get("recent")).not.toBeNull();
    // a write for a day past retention is left out rather than re-creating its partition
    expect(await narrow.write([archived("older", now - 10 * day, 1)])).toBe(0);
    expect(await narrow.partitionDays()).not.toContain(Math.floor((now - 10 * day) / day) * day);
  });
});
