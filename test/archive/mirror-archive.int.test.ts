import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterEach, describe, expect, inject, it } from "vitest";
import { deliveryId } from "../../contract/delivery-id.ts";
import { readStatusRequests } from "../../contract/status-requests.ts";
import { ArchiveStore } from "../../dispatcher/archive/archive-store.ts";
import { type Dispatcher, startDispatcher } from "../../dispatcher/dispatcher.ts";
import { FairLimiter } from "../../operator/mirror/fair-limiter.ts";
import { WebhookEventMirror } from "../../operator/mirror/mirror.ts";
import { TokenBucket } from "../../operator/mirror/rate-limiter.ts";
import { freshDatabase, receiver, redis, useArchiveFrame } from "../support/archive-frame.ts";
import { FakeWebhookEventApi } from "../support/fake-webhook-event-api.ts";
import { api, eventually, routeNamespaces, testRouting, testSettings } from "../support/fixtures.ts";

// The WebhookEvent mirror beside a dispatcher that archives into a real PostgreSQL: a QUEUED
// WebhookEvent whose record is gone from Redis is not marked Lost while the store has the delivery
// (completed, archived, expired after the hot window while no operator read its status entries);
// the dispatchers answer the mirror's status request (contract/status-requests.ts). The API server
// is faked as in operator/mirror/mirror.int.test.ts; Redis, the dispatcher, Postgres and the
// receiver on 127.0.0.1 are real.

const HOOK_UID = "hook-uid";
useArchiveFrame();
let dispatcher: Dispatcher | undefined;
const mirrors: WebhookEventMirror[] = [];
const connections: Redis[] = [];
const stores: ArchiveStore[] = [];

afterEach(async () => {
  for (const mirror of mirrors.splice(0)) await mirror.stop();
  for (const connection of connections.splice(0)) connection.disconnect();
  await dispatcher?.stop();
  dispatcher = undefined;
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

/** A dispatcher archiving into a fresh database, with a 2 s hot window and fast rounds. */
async function startArchiving(namespace: string, path: string, partitions: number): Promise<Dispatcher> {
  const url = await freshDatabase();
  dispatcher = await startDispatcher(
    testSettings(inject("redisUrl"), {
      postgresUrl: url,
      archiveHotWindowMs: 2_000,
      archiveIntervalMs: 100,
      maintenanceIntervalMs: 200,
      partitions,
    }),
  );
  const routing = testRouting(
    namespace,
    [{ name: "hook", uid: HOOK_UID, event: "job.created", url: receiver.url(path) }],
    {
      // the receiver answers late: the delivery stays QUEUED meanwhile
      delivery: {
        maxAttempts: 3,
        timeoutMs: 5_000,
        backoff: { initialDelayMs: 20, maxDelayMs: 200, multiplier: 2 },
      },
    },
  );
  await routeNamespaces(redis, dispatcher!, [routing]);
  stores.push(new ArchiveStore({ url, retentionDays: 30, max: 1 }));
  return dispatcher;
}

/** The operator's mirror (its leader), re-checking stale QUEUED WebhookEvents every 200 ms. */
async function startMirror(
  d: Dispatcher,
  api: FakeWebhookEventApi,
  registry: Registry,
  events: string[] = [],
): Promise<WebhookEventMirror> {
  const readers = d.partitions.all.map(() => new Redis(inject("redisUrl")));
  connections.push(...readers);
  const mirror = new WebhookEventMirror({
    redis,
    keys: d.keys,
    partitions: d.partitions,
    reader: readers[0]!,
    readers,
    consumer: `operator-${mirrors.length}`,
    writes: api,
    limiter: new FairLimiter(new TokenBucket({ qps: 1000, burst: 100 })),
    registry,
    logger: pino({ enabled: false }),
    blockMs: 100,
    recheckIntervalMs: 200,
    statusRequestIntervalMs: 1_000,
    context: {
      policy: () => ({ mode: "All", retentionMs: 3_600_000 }),
      existing: (_namespace, name) => api.objects.get(name),
      webhookUid: () => HOOK_UID,
      retiredUpTo: () => undefined,
      staleQueued: () =>
        [...api.objects.values()]
          .filter((event) => event.status?.phase === "QUEUED")
          .map((event) => ({ namespace: event.metadata.namespace!, name: event.metadata.name })),
      recordEvent: (_regarding, input) => events.push(input.reason),
    },
  });
  mirrors.push(mirror);
  await mirror.start();
  return mirror;
}

async function mirrorResult(registry: Registry, result: string): Promise<number> {
  const metric = await registry.getSingleMetric("dataforce_operator_mirror_deliveries_total")?.get();
  return metric?.values.find((value) => value.labels.result === result)?.value ?? 0;
}

async function ingest(d: Dispatcher, namespace: string, id: string): Promise<void> {
  const response = await api(d.url, "POST", "/v1/events", { type: "job.created", namespace, id, data: {} });
  expect(response.status).toBe(202);
}

describe("the WebhookEvent mirror with a durable log store", () => {
  it.each([1, 3])(
    "shows a delivery it missed the end of, archived and expired from Redis since, as SENT from the store, not Lost (%i partitions)",
    async (partitions) => {
      const namespace = `mirror-arch-${partitions}`;
      const path = `/mirror-archive-sent-${partitions}`;
      receiver.on(path, { kind: "respond", status: 200, delayMs: 2_000 });
      const d = await startArchiving(namespace, path, partitions);
      const home = d.partitions.of(namespace);
      const store = stores.at(-1)!;
      const api = new FakeWebhookEventApi();

      // an operator sees the delivery QUEUED, then is down while it is SENT
      const first = await startMirror(d, api, new Registry());
      await ingest(d, namespace, "evt-1");
      const id = deliveryId(namespace, "evt-1", "hook");
      await eventually(
        () => (api.objects.get(id)?.status?.phase === "QUEUED" ? true : undefined),
        5_000,
        "QUEUED",
      );
      await first.stop();
      expect(api.objects.get(id)?.status?.phase).toBe("QUEUED");
      // … longer than the hot window: archived, then gone from Redis
      await eventually(
        async () => ((await store.get(id))?.record.phase === "SENT" ? true : undefined),
        20_000,
        "archived",
      );
      await eventually(
        async () => ((await redis.exists(home.delivery(id))) === 0 ? true : undefined),
        10_000,
        "gone from Redis",
      );
      // … and behind the status stream's cap: the SENT entry was trimmed before it read it
      for (const keys of d.partitions.all) await redis.xtrim(keys.status, "MAXLEN", 0);

      // the next operator's re-check finds no record
      const registry = new Registry();
      const events: string[] = [];
      const calls = api.calls.length;
      await startMirror(d, api, registry, events);
      await eventually(
        () => (api.objects.get(id)?.status?.phase === "SENT" ? true : undefined),
        20_000,
        "SENT",
      );
      expect(await mirrorResult(registry, "asked")).toBeGreaterThanOrEqual(1);
      expect(await mirrorResult(registry, "lost")).toBe(0);
      expect(events).toEqual([]);
      // never shown FAILED (Lost) on the way
      expect(api.calls.slice(calls)).toEqual([`status ${id} SENT`, `labels ${id} SENT`]);
      const shown = api.objects.get(id)!;
      expect(shown.status?.attemptHistory?.map((attempt) => attempt.statusCode)).toEqual([200]);
      expect(shown.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
      // served and forgotten
      expect(await readStatusRequests(redis, home, 10)).toEqual([]);
    },
  );

  it("still marks Lost a delivery that neither Redis nor the store has, once the dispatchers answered", async () => {
    const namespace = "mirror-arch-lost";
    const path = "/mirror-archive-lost";
    receiver.on(path, { kind: "respond", status: 200, delayMs: 3_000 });
    const d = await startArchiving(namespace, path, 1);
    const keys = d.keys;
    const api = new FakeWebhookEventApi();
    const registry = new Registry();
    const events: string[] = [];
    await startMirror(d, api, registry, events);
    await ingest(d, namespace, "evt-lost");
    const id = deliveryId(namespace, "evt-lost", "hook");
    await eventually(
      () => (api.objects.get(id)?.status?.phase === "QUEUED" ? true : undefined),
      5_000,
      "QUEUED",
    );
    // Redis loses the record before the delivery completes: nothing was archived
    await redis.del(keys.delivery(id));
    await eventually(
      () => (api.objects.get(id)?.status?.phase === "FAILED" ? true : undefined),
      20_000,
      "Lost",
    );
    const lost = api.objects.get(id)!;
    expect(lost.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "False",
      reason: "Lost",
    });
    expect(lost.metadata.labels?.["webhooks.dataforce.io/phase"]).toBe("FAILED");
    expect(events).toEqual(["DeliveryLost"]);
    // not at once: the dispatchers were asked first, and their answer is used up
    expect(await mirrorResult(registry, "asked")).toBeGreaterThanOrEqual(1);
    expect(await mirrorResult(registry, "lost")).toBe(1);
    expect(await redis.exists(keys.archiveMissing(namespace, id))).toBe(0);
    expect(await stores.at(-1)!.get(id)).toBeNull();
  });
});
