import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { readDeliveries, readDelivery } from "../contract/deliveries.ts";
import { deliveryId } from "../contract/delivery-id.ts";
import { keyspace } from "../contract/keys.ts";
import { onePartition } from "../contract/partitions.ts";
import { NamespaceRoutingSchema, writeNamespaceRouting } from "../contract/routing-config.ts";
import { freePort } from "../test/env/ports.ts";
import { api, eventually, TEST_SECRET_BOX, testRouting, testSettings } from "../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../test/support/receiver.ts";
import { type Dispatcher, startDispatcher } from "./dispatcher.ts";
import { Fanout } from "./fanout/fanout.ts";
import { createMetrics } from "./metrics.ts";
import { prepareNamespace, type RoutingWatcher } from "./routing-table.ts";

// No work is routed with a routing table this replica has not loaded (or that lags behind the
// revision the work was fanned out at).

let redis: Redis;
let receiver: Receiver;
const dispatchers: Dispatcher[] = [];

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
  redis.disconnect();
});
afterEach(async () => {
  await Promise.all(dispatchers.splice(0).map((dispatcher) => dispatcher.stop()));
});

describe("routing readiness", () => {
  it("answers 503 and routes nothing until the routing configuration can be read", async () => {
    receiver.on("/ready", { kind: "respond", status: 200 });
    const port = await freePort();
    const settings = testSettings(inject("redisUrl"), { port });
    const keys = keyspace(settings.keyTag);
    // the routing hash cannot be read: every load fails (WRONGTYPE)
    await redis.set(keys.routing, "not a hash");
    const starting = startDispatcher(settings);
    const url = `http://127.0.0.1:${port}`;
    await eventually(async () =>
      (await fetch(`${url}/readyz`).catch(() => null))?.status === 503 ? true : undefined,
    );

    const early = await api(url, "POST", "/v1/events", {
      type: "job.created",
      namespace: "ready",
      id: "evt-early",
      data: {},
    });
    expect(early.status).toBe(503);
    expect(early.body).toMatchObject({ error: { code: "UNAVAILABLE" } });
    await redis.xadd(
      keys.events,
      "*",
      "type",
      "job.created",
      "namespace",
      "ready",
      "id",
      "evt-stream",
      "data",
      "{}",
    );
    await sleep(500);
    expect(await redis.exists(keys.seen("ready", "evt-early"), keys.seen("ready", "evt-stream"))).toBe(0);
    expect(await redis.exists(keys.event("ready", "evt-stream"))).toBe(0);

    await redis.del(keys.routing);
    await writeNamespaceRouting(
      redis,
      testRouting("ready", [{ name: "hook", event: "job.created", url: receiver.url("/ready") }]),
      keys,
      TEST_SECRET_BOX,
    );
    const dispatcher = await starting;
    dispatchers.push(dispatcher);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    // the event appended while routing was unknown is routed now, not recorded as integration-missing
    const record = await eventually(
      async () => {
        const delivery = await readDelivery(redis, deliveryId("ready", "evt-stream", "hook"), keys);
        return delivery?.phase === "SENT" ? delivery : undefined;
      },
      10_000,
      "the stream event delivered",
    );
    expect(record.webhook).toBe("hook");
    const late = await api(url, "POST", "/v1/events", {
      type: "job.created",
      namespace: "ready",
      id: "evt-early",
      data: {},
    });
    expect(late).toMatchObject({ status: 202, body: { duplicate: false } });
  });

  it("stops routing while Redis has lost the routing it saw (the operator's epoch is gone), and resumes when it is back", async () => {
    const settings = testSettings(inject("redisUrl"), { routingPollMs: 50 });
    const keys = keyspace(settings.keyTag);
    const routing = testRouting("lost", [{ name: "hook", event: "job.created", url: receiver.url("/lost") }]);
    await writeNamespaceRouting(redis, routing, keys, TEST_SECRET_BOX);
    await redis.set(keys.routingEpoch, "epoch-1");
    const dispatcher = await startDispatcher(settings);
    dispatchers.push(dispatcher);
    const publish = (id: string) =>
      api(dispatcher.url, "POST", "/v1/events", { type: "job.created", namespace: "lost", id, data: {} });
    expect((await publish("before")).status).toBe(202);

    // what a restart without persistence, a failover to an empty replica or a flush leaves
    await redis.del(keys.routing, keys.routingRevision, keys.routingEpoch);
    await eventually(async () =>
      (await fetch(`${dispatcher.url}/readyz`)).status === 503 ? true : undefined,
    );
    expect(await publish("during")).toMatchObject({ status: 503, body: { error: { code: "UNAVAILABLE" } } });
    expect(await redis.exists(keys.event("lost", "during"))).toBe(0); // not recorded integration-missing

    // the operator writes the routing again, then a new epoch
    await writeNamespaceRouting(redis, routing, keys, TEST_SECRET_BOX);
    await redis.set(keys.routingEpoch, "epoch-2");
    await eventually(async () =>
      (await fetch(`${dispatcher.url}/readyz`)).status === 200 ? true : undefined,
    );
    expect((await publish("after")).status).toBe(202);
  });

  it("hands back work fanned out at a newer routing revision than its own instead of failing it", async () => {
    receiver.on("/lag", { kind: "respond", status: 200 });
    const settings = testSettings(inject("redisUrl"), { routingPollMs: 60_000 });
    const keys = keyspace(settings.keyTag);
    const dispatcher = await startDispatcher(settings);
    dispatchers.push(dispatcher);
    const localRevision = dispatcher.routingRevision();
    // another replica, already at a newer revision, fans out to a webhook this one does not know
    const routing = NamespaceRoutingSchema.parse(
      testRouting("lag", [{ name: "late", event: "job.created", url: receiver.url("/lag") }]),
    );
    const newer = localRevision + 5;
    const aheadRouting = {
      loaded: true,
      revision: newer,
      namespace: (name: string) => (name === "lag" ? prepareNamespace(routing) : undefined),
    } as unknown as RoutingWatcher;
    const fanout = new Fanout({
      redis,
      partitions: onePartition(keys),
      routing: aheadRouting,
      metrics: createMetrics(async () => null),
      logger: pino({ level: "silent" }),
      retentionMs: 60_000,
      statusStreamMaxLen: 1000,
      idempotencyWindowMs: 60_000,
    });
    await fanout.record([
      {
        type: "job.created",
        namespace: "lag",
        id: "evt-lag",
        occurredAt: new Date().toISOString(),
        data: "{}",
        ingestedAt: Date.now(),
      },
    ]);
    const id = deliveryId("lag", "evt-lag", "late");
    const [stored] = await readDeliveries(redis, [id], keys);
    expect(stored?.view.header.routingRevision).toBe(newer);
    await sleep(800);
    expect(await readDelivery(redis, id, keys)).toMatchObject({ phase: "QUEUED", attempts: [] });

    // this replica catches up: the work is delivered
    await redis.set(keys.routingRevision, newer - 1);
    await writeNamespaceRouting(redis, routing, keys, TEST_SECRET_BOX);
    await eventually(async () =>
      (await readDelivery(redis, id, keys))?.phase === "SENT" ? true : undefined,
    );
    expect(receiver.requests("/lag")).toHaveLength(1);
  });
});
