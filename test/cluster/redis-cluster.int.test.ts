import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Cluster } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readDelivery } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import type { DeliverySummary } from "../../contract/delivery-log.ts";
import { keySlot, partitionTags } from "../../contract/partitions.ts";
import type { DeliveryPhase, DeliveryRecord } from "../../contract/records.ts";
import type { NamespaceRoutingInput } from "../../contract/routing-config.ts";
import type { SettingsInput } from "../../dispatcher/config.ts";
import { type Dispatcher, startDispatcher } from "../../dispatcher/dispatcher.ts";
import type { WebhookEvent } from "../../operator/api/v1alpha1/index.ts";
import type { ResourceType } from "../../operator/controller/kube.ts";
import { FairLimiter } from "../../operator/mirror/fair-limiter.ts";
import { type MirrorWrites, WebhookEventMirror } from "../../operator/mirror/mirror.ts";
import { TokenBucket } from "../../operator/mirror/rate-limiter.ts";
import { askForRetry } from "../../operator/retry/retry.ts";
import { startRedisCluster, type TestRedisCluster } from "../env/redis-cluster.ts";
import { api, eventually, routeNamespaces, testRouting, testSettings } from "../support/fixtures.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";

// The data plane on a real Redis Cluster of 3 masters (redis-server in cluster mode on loopback,
// joined by `redis-cli --cluster create`), with the keyspace in 3 partitions: delivery, retry,
// the event log across partitions, and slot migrations under load losing nothing.

const PARTITIONS = 3;

let cluster: TestRedisCluster;
let redis: Cluster;
let receiver: Receiver;
let dispatcher: Dispatcher | undefined;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  redis = cluster.connect();
  receiver = await startReceiver();
}, 60_000);
afterAll(async () => {
  await receiver?.close();
  redis?.disconnect();
  await cluster?.stop();
});
afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
});

async function start(routings: NamespaceRoutingInput[], overrides: Partial<SettingsInput> = {}) {
  dispatcher = await startDispatcher(
    testSettings("redis://127.0.0.1:6379", {
      redisClusterNodes: cluster.nodes,
      partitions: String(PARTITIONS),
      ...overrides,
    } as Partial<SettingsInput>),
  );
  await routeNamespaces(redis, dispatcher, routings);
  return dispatcher;
}

/** One namespace per partition (by the namespace → partition hash). */
function namespacesPerPartition(d: Dispatcher): string[] {
  const found: string[] = [];
  for (let i = 0; found.length < PARTITIONS; i++) {
    const name = `team-${i}`;
    if (d.partitions.indexOf(name) === found.length) found.push(name);
  }
  return found;
}

let pathCounter = 0;
const uniquePath = (name: string) => `/${name}-${++pathCounter}`;

async function phaseOf(d: Dispatcher, namespace: string, id: string): Promise<DeliveryRecord | null> {
  return readDelivery(redis, id, d.partitions.of(namespace));
}

async function waitForPhase(d: Dispatcher, namespace: string, id: string, phase: DeliveryPhase) {
  return eventually(
    async () => {
      const record = await phaseOf(d, namespace, id);
      return record?.phase === phase ? record : undefined;
    },
    15_000,
    `${id} to be ${phase}`,
  );
}

describe("Redis Cluster, 3 masters, 3 partitions", () => {
  it("spreads the partitions over the masters", async () => {
    const tags = partitionTags("dataforce", PARTITIONS);
    const owners = await Promise.all(tags.map((tag) => cluster.ownerOf(keySlot(`{${tag}}:events`))));
    expect(new Set(owners).size).toBe(3);
  });

  it("delivers events of every partition, from the API and from the ingest stream", async () => {
    const path = uniquePath("spread");
    const probe = await start([]);
    const namespaces = namespacesPerPartition(probe);
    await probe.stop();
    dispatcher = undefined;
    const tag = `t-spread-${Date.now()}`;
    const d = await start(
      namespaces.map((ns) =>
        testRouting(ns, [
          { name: "orders", uid: `uid-${ns}`, event: "job.created", url: receiver.url(path) },
        ]),
      ),
      { keyTag: tag },
    );
    // a batch across partitions
    const events = namespaces.map((namespace, i) => ({
      type: "job.created",
      namespace,
      id: `evt-${i}`,
      data: { i },
    }));
    const batch = await api(d.url, "POST", "/v1/events/batch", { events });
    expect(batch.status).toBe(202);
    // producers XADD to partition 0's ingest stream, whatever the namespace
    for (const [i, namespace] of namespaces.entries()) {
      await redis.xadd(
        d.keys.events,
        "*",
        "type",
        "job.created",
        "namespace",
        namespace,
        "id",
        `xadd-${i}`,
        "data",
        JSON.stringify({ i }),
      );
    }
    await receiver.waitForRequests(2 * PARTITIONS, path, 15_000);
    for (const namespace of namespaces) {
      for (const eventId of [
        `evt-${namespaces.indexOf(namespace)}`,
        `xadd-${namespaces.indexOf(namespace)}`,
      ]) {
        const id = deliveryId(namespace, eventId, "orders");
        await waitForPhase(d, namespace, id, "SENT");
      }
    }
    // each partition's records are on its own master
    const owners = await Promise.all(
      namespaces.map((namespace) => cluster.ownerOf(keySlot(d.partitions.of(namespace).deliveries))),
    );
    expect(new Set(owners).size).toBe(3);
    // the ingest stream of partition 0 is drained: the entries of other partitions' namespaces acknowledged
    const pending = (await redis.xpending(d.keys.events, "fanout")) as [number, ...unknown[]];
    expect(pending[0]).toBe(0);
    // a repeated event id is a duplicate, in its partition
    const again = await api(d.url, "POST", "/v1/events", events[2]);
    expect(again.body).toMatchObject({ duplicate: true });
  });

  it("retries a FAILED delivery found in its partition, and lists the log across partitions", async () => {
    const path = uniquePath("retry");
    let failing = true;
    receiver.on(path, () => (failing ? { kind: "respond", status: 500 } : { kind: "respond", status: 200 }));
    const probe = await start([]);
    const namespaces = namespacesPerPartition(probe);
    await probe.stop();
    dispatcher = undefined;
    const d = await start(
      namespaces.map((ns) =>
        testRouting(
          ns,
          [{ name: "hook", uid: `uid-${ns}`, event: "payment.received", url: receiver.url(path) }],
          {
            // about FAILED deliveries: the circuit breaker (on by default) would hold them QUEUED
            delivery: {
              maxAttempts: 3,
              timeoutMs: 1_000,
              backoff: { initialDelayMs: 20, maxDelayMs: 200, multiplier: 2 },
              circuitBreaker: { consecutiveFailures: 0 },
            },
          },
        ),
      ),
      { keyTag: `t-retry-${Date.now()}` },
    );
    const perNamespace = 4;
    const ids: string[] = [];
    for (let n = 0; n < perNamespace; n++) {
      for (const namespace of namespaces) {
        const eventId = `p-${n}`;
        const response = await api(d.url, "POST", "/v1/events", {
          type: "payment.received",
          namespace,
          id: eventId,
          data: { n },
        });
        expect(response.status).toBe(202);
        ids.push(deliveryId(namespace, eventId, "hook"));
        await sleep(2); // distinct creation times
      }
    }
    for (const [i, id] of ids.entries()) await waitForPhase(d, namespaces[i % PARTITIONS]!, id, "FAILED");

    // the log: all of them once, newest first, in pages of 5 across the partitions
    const listed: DeliverySummary[] = [];
    let cursor: string | undefined;
    do {
      const page = await api(d.url, "GET", `/v1/deliveries?limit=5${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.status).toBe(200);
      const body = page.body as { items: DeliverySummary[]; nextCursor?: string };
      listed.push(...body.items);
      cursor = body.nextCursor;
    } while (cursor !== undefined);
    expect(listed.map((item) => item.id).sort()).toEqual([...ids].sort());
    expect(listed.map((item) => item.id)).toEqual([...ids].reverse());
    // one namespace; the FAILED ones
    const own = await api(d.url, "GET", `/v1/deliveries?namespace=${namespaces[1]}`);
    expect((own.body as { items: DeliverySummary[] }).items).toHaveLength(perNamespace);
    const failed = await api(d.url, "GET", "/v1/deliveries?phase=FAILED&limit=500");
    expect((failed.body as { items: DeliverySummary[] }).items).toHaveLength(ids.length);
    // show one of partition 2
    const shown = await api(d.url, "GET", `/v1/deliveries/${ids[2]}`);
    expect(shown.body).toMatchObject({ id: ids[2], namespace: namespaces[2], phase: "FAILED" });

    failing = false;
    // one by id (its partition is found), then the rest in bulk (every partition)
    const one = await api(d.url, "POST", `/v1/deliveries/${ids[1]}/retry`, { token: "one" });
    expect(one.status).toBe(202);
    await waitForPhase(d, namespaces[1]!, ids[1]!, "SENT");
    const bulk = await api(d.url, "POST", "/v1/deliveries/retry", { token: "bulk" });
    expect(bulk.body).toMatchObject({ requeued: ids.length - 1 });
    for (const [i, id] of ids.entries()) await waitForPhase(d, namespaces[i % PARTITIONS]!, id, "SENT");
    const unknown = await api(d.url, "POST", "/v1/deliveries/nope-aaaaaaaaaaaaaaaaaaaa/retry", {
      token: "x",
    });
    expect(unknown.status).toBe(404);
  });

  it("loses nothing while partitions' slots migrate to other masters under load", async () => {
    const path = uniquePath("reshard");
    const probe = await start([]);
    const namespaces = namespacesPerPartition(probe);
    await probe.stop();
    dispatcher = undefined;
    const d = await start(
      namespaces.map((ns) =>
        testRouting(ns, [{ name: "load", uid: `uid-${ns}`, event: "job.created", url: receiver.url(path) }]),
      ),
      { keyTag: `t-reshard-${Date.now()}` },
    );
    /** delivery id → namespace */
    const accepted = new Map<string, string>();
    let stop = false;
    let retried = 0;
    // 4 producers over the three partitions; a failed publish is retried with the same id
    const produce = async (first: number) => {
      for (let n = first; !stop; n += 4) {
        const namespace = namespaces[n % PARTITIONS]!;
        const event = { type: "job.created", namespace, id: `load-${n}`, data: { n } };
        for (;;) {
          const response = await api(d.url, "POST", "/v1/events", event).catch(() => ({ status: 0 }));
          if (response.status === 202) break;
          retried++;
          await sleep(50);
        }
        accepted.set(deliveryId(namespace, event.id, "load"), namespace);
      }
    };
    const producer = Promise.all([0, 1, 2, 3].map(produce));
    await sleep(1_500);
    // move partition 1's slot and then partition 0's (with the routing) to other masters, under load
    const moves: Array<{ slot: number; from: number; to: number; keys: number; ms: number }> = [];
    for (const index of [1, 0]) {
      const slot = keySlot(d.partitions.all[index]!.deliveries);
      const from = await cluster.ownerOf(slot);
      const to = cluster.ports.find((port) => port !== from)!;
      const began = Date.now();
      // two keys at a time with a pause: for a few seconds the partition's keys are on both masters
      const keys = await cluster.migrateSlot(slot, to, 2, 10);
      moves.push({ slot, from, to, keys, ms: Date.now() - began });
      expect(await cluster.ownerOf(slot)).toBe(to);
      await sleep(1_000);
    }
    stop = true;
    await producer;
    // every accepted event delivered and SENT, each at least once
    await eventually(
      () => {
        const delivered = new Set(
          receiver.requests(path).map((request) => String(request.headers["webhook-id"])),
        );
        return [...accepted.keys()].every((id) => delivered.has(id)) ? true : undefined;
      },
      30_000,
      "every accepted event delivered",
    );
    // and recorded SENT (the outcome of the last attempts may still be on its way to Redis)
    const phases = await eventually(
      async () => {
        const phases = await Promise.all(
          [...accepted].map(async ([id, namespace]) => (await phaseOf(d, namespace, id))?.phase),
        );
        return phases.every((phase) => phase === "SENT") ? phases : undefined;
      },
      10_000,
      "every delivery SENT",
    ).catch(async (error) => {
      const phases: Record<string, number> = {};
      for (const [id, namespace] of accepted) {
        const phase = (await phaseOf(d, namespace, id))?.phase ?? "missing";
        phases[phase] = (phases[phase] ?? 0) + 1;
      }
      throw new Error(`${String(error)}: ${JSON.stringify(phases)}`);
    });
    const delivered = receiver.requests(path).length;
    console.log(
      `reshard under load: ${accepted.size} events accepted, ${delivered} requests (${delivered - accepted.size} repeated), ${retried} publishes retried; moves ${JSON.stringify(moves)}`,
    );
    expect(phases).toHaveLength(accepted.size);
    expect(accepted.size).toBeGreaterThan(100);
  }, 90_000);

  it("mirrors every partition's status stream into WebhookEvents, and retries through the operator", async () => {
    const path = uniquePath("operator");
    let failing = true;
    receiver.on(path, () => (failing ? { kind: "respond", status: 500 } : { kind: "respond", status: 200 }));
    const probe = await start([]);
    const namespaces = namespacesPerPartition(probe);
    await probe.stop();
    dispatcher = undefined;
    const d = await start(
      namespaces.map((ns) =>
        testRouting(ns, [
          { name: "mirrored", uid: "hook-uid", event: "job.updated", url: receiver.url(path) },
        ]),
      ),
      { keyTag: `t-operator-${Date.now()}` },
    );
    const api = new FakeApi();
    const readers = d.partitions.all.map(() => cluster.connect());
    const mirror = new WebhookEventMirror({
      redis,
      keys: d.keys,
      partitions: d.partitions,
      reader: readers[0]!,
      readers,
      consumer: "operator-1",
      writes: api,
      limiter: new FairLimiter(new TokenBucket({ qps: 1000, burst: 100 })),
      registry: new Registry(),
      logger: pino({ enabled: false }),
      blockMs: 100,
      context: {
        policy: () => ({ mode: "All", retentionMs: 3_600_000 }),
        existing: (namespace, name) => api.objects.get(`${namespace}/${name}`),
        webhookUid: () => "hook-uid",
        retiredUpTo: () => undefined,
      },
    });
    await mirror.start();
    try {
      const ids = namespaces.map((namespace) => deliveryId(namespace, "u-1", "mirrored"));
      for (const namespace of namespaces) {
        const response = await api_(d.url, namespace);
        expect(response.status).toBe(202);
      }
      const phaseOfObject = (namespace: string, id: string) =>
        api.objects.get(`${namespace}/${id}`)?.status?.phase;
      await eventually(
        () => (ids.every((id, i) => phaseOfObject(namespaces[i]!, id) === "FAILED") ? true : undefined),
        15_000,
        "every WebhookEvent FAILED",
      );
      failing = false;
      for (const [i, id] of ids.entries()) {
        const decision = await askForRetry(
          { redis, keys: d.keys, partitions: d.partitions },
          { namespace: namespaces[i]!, deliveryId: id },
          "annotation-1",
        );
        expect(decision.outcome).toBe("requeued");
      }
      // another namespace's delivery is not reached through this one
      const foreign = await askForRetry(
        { redis, keys: d.keys, partitions: d.partitions },
        { namespace: namespaces[0]!, deliveryId: ids[1]! },
        "annotation-2",
      );
      expect(foreign.outcome).toBe("ignored");
      await eventually(
        () => (ids.every((id, i) => phaseOfObject(namespaces[i]!, id) === "SENT") ? true : undefined),
        15_000,
        "every WebhookEvent SENT",
      );
      // every partition's status entries acknowledged
      for (const keys of d.partitions.all) {
        const pending = (await redis.xpending(keys.status, "operator-mirror")) as [number, ...unknown[]];
        expect(pending[0]).toBe(0);
      }
    } finally {
      await mirror.stop();
      for (const reader of readers) reader.disconnect();
    }
  });
});

function api_(url: string, namespace: string) {
  return api(url, "POST", "/v1/events", { type: "job.updated", namespace, id: "u-1", data: {} });
}

/** A fake API server for the mirror: WebhookEvents by namespace/name. */
class FakeApi implements MirrorWrites {
  readonly objects = new Map<string, WebhookEvent>();

  async create<T extends object>(_type: ResourceType, namespace: string, body: T): Promise<T> {
    const event = structuredClone(body) as unknown as WebhookEvent;
    this.objects.set(`${namespace}/${event.metadata.name}`, {
      ...event,
      metadata: { ...event.metadata, generation: 1, uid: randomUUID() },
    });
    return body;
  }

  async patchStatus(
    _type: ResourceType,
    target: { namespace: string; name: string },
    status: Record<string, unknown>,
  ): Promise<void> {
    const object = this.objects.get(`${target.namespace}/${target.name}`)!;
    object.status = { ...object.status, ...status } as WebhookEvent["status"];
  }

  async patch(
    _type: ResourceType,
    target: { namespace: string; name: string },
    patch: Record<string, unknown>,
  ): Promise<void> {
    const labels = (patch as { metadata: { labels: Record<string, string> } }).metadata.labels;
    const object = this.objects.get(`${target.namespace}/${target.name}`)!;
    object.metadata.labels = { ...object.metadata.labels, ...labels };
  }
}
