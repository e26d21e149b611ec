// The mirror against a real Redis (the dispatcher's status stream and delivery records,
// written in their documented stored form) and a fake API server.
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { readDelivery } from "../../contract/deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace, keyspace } from "../../contract/keys.ts";
import { answerMissing, readStatusRequests } from "../../contract/status-requests.ts";
import { FakeWebhookEventApi } from "../../test/support/fake-webhook-event-api.ts";
import { FairLimiter } from "./fair-limiter.ts";
import { type MirrorContext, WebhookEventMirror } from "./mirror.ts";
import { TokenBucket } from "./rate-limiter.ts";

const NS = "acme";
let redis: Redis;
let blocking: Redis;
let keys: Keyspace;
let mirror: WebhookEventMirror | undefined;

beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
  blocking = new Redis(inject("redisUrl"));
});

afterEach(async () => {
  await mirror?.stop();
  mirror = undefined;
});

afterAll(() => {
  redis.disconnect();
  blocking.disconnect();
});

function startMirror(
  api: FakeWebhookEventApi,
  context: Partial<MirrorContext> = {},
  consumer = "reader-1",
  recheckIntervalMs = 60_000,
  registry = new Registry(),
) {
  mirror = new WebhookEventMirror({
    redis,
    keys,
    reader: blocking,
    consumer,
    writes: api,
    limiter: new FairLimiter(new TokenBucket({ qps: 1000, burst: 100 })),
    registry,
    logger: pino({ enabled: false }),
    blockMs: 100,
    recheckIntervalMs,
    context: {
      policy: () => ({ mode: "All", retentionMs: 3_600_000 }),
      existing: (_ns, name) => api.objects.get(name),
      webhookUid: () => "hook-uid",
      retiredUpTo: () => undefined,
      ...context,
    },
  });
  return mirror.start();
}

async function putDelivery(id: string, phase: "QUEUED" | "SENT" | "FAILED", attempts: number): Promise<void> {
  const now = Date.now();
  await redis.hset(keys.delivery(id), {
    id,
    eventId: `evt-${id}`,
    eventType: "job.created",
    namespace: NS,
    webhook: "hook",
    webhookUid: "hook-uid",
    url: "https://example.com/hook",
    payload: `{"id":"evt-${id}"}`,
    phase,
    attempts: JSON.stringify(
      Array.from({ length: attempts }, (_, i) => ({
        number: i + 1,
        startedAt: new Date(now).toISOString(),
        durationMs: 5,
        statusCode: phase === "SENT" && i === attempts - 1 ? 200 : 500,
      })),
    ),
    maxAttempts: "3",
    cycle: "1",
    cycleAttempts: String(attempts),
    occurredAt: new Date(now).toISOString(),
    ingestedAt: String(now),
    createdAt: String(now),
    updatedAt: String(now),
    version: String(attempts + 1),
  });
}

async function addStatusEntry(id: string, phase: string, attempts: number): Promise<string> {
  return (await redis.xadd(
    keys.status,
    "*",
    ...["deliveryId", id, "phase", phase, "namespace", NS, "webhook", "hook"],
    ...[
      "eventType",
      "job.created",
      "eventId",
      `evt-${id}`,
      "attempts",
      String(attempts),
      "at",
      new Date().toISOString(),
    ],
  )) as string;
}

async function pendingCount(): Promise<number> {
  const [count] = (await redis.xpending(keys.status, CONSUMER_GROUPS.mirror)) as [number];
  return Number(count);
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("WebhookEventMirror", () => {
  it("writes a delivery whose QUEUED and SENT entries it reads together once: a create and one status write", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    await putDelivery("d1", "SENT", 1);
    await addStatusEntry("d1", "QUEUED", 0);
    await addStatusEntry("d1", "SENT", 1);
    const api = new FakeWebhookEventApi();
    await startMirror(api);
    await until(async () => api.objects.get("d1")?.status?.phase === "SENT" && (await pendingCount()) === 0);
    expect(api.calls).toEqual(["create d1", "status d1 SENT"]);
    expect(api.objects.get("d1")?.metadata.labels?.["webhooks.dataforce.io/phase"]).toBe("SENT");
  });

  it("follows a known delivery through its states and acknowledges only what it wrote", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    await putDelivery("d2", "QUEUED", 1);
    await addStatusEntry("d2", "QUEUED", 1);
    const api = new FakeWebhookEventApi();
    await startMirror(api);
    await until(() => api.objects.get("d2")?.status?.phase === "QUEUED");
    await putDelivery("d2", "FAILED", 3);
    await addStatusEntry("d2", "FAILED", 3);
    await until(
      async () => api.objects.get("d2")?.status?.phase === "FAILED" && (await pendingCount()) === 0,
    );
    expect(api.calls).toEqual(["create d2", "status d2 QUEUED", "status d2 FAILED", "labels d2 FAILED"]);
  });

  it("keeps the entries pending while writes fail, and mirrors them once the API server answers", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    await putDelivery("d3", "SENT", 1);
    await addStatusEntry("d3", "SENT", 1);
    const api = new FakeWebhookEventApi();
    api.failures = 3;
    await startMirror(api);
    await until(() => api.calls.length >= 2);
    expect(await pendingCount()).toBe(1);
    await until(async () => api.objects.get("d3")?.status?.phase === "SENT" && (await pendingCount()) === 0);
  });

  it("claims the entries a dead reader held, and forgets that reader", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    await putDelivery("d4", "SENT", 1);
    await addStatusEntry("d4", "SENT", 1);
    await redis.xgroup("CREATE", keys.status, CONSUMER_GROUPS.mirror, "0", "MKSTREAM");
    await redis.xreadgroup(
      "GROUP",
      CONSUMER_GROUPS.mirror,
      "dead-reader",
      "COUNT",
      10,
      "STREAMS",
      keys.status,
      ">",
    );
    expect(await pendingCount()).toBe(1);

    const api = new FakeWebhookEventApi();
    await startMirror(api, {}, "new-leader");
    await until(async () => api.objects.get("d4")?.status?.phase === "SENT" && (await pendingCount()) === 0);
    const consumers = (await redis.xinfo("CONSUMERS", keys.status, CONSUMER_GROUPS.mirror)) as unknown[][];
    expect(consumers.map((fields) => fields[1])).toEqual(["new-leader"]);
  });

  it("acknowledges, without writing, deliveries the namespace does not mirror, and still reports them", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    await putDelivery("d5", "SENT", 1);
    await addStatusEntry("d5", "SENT", 1);
    const api = new FakeWebhookEventApi();
    const seen: string[] = [];
    await startMirror(api, {
      policy: () => ({ mode: "None", retentionMs: 3_600_000 }),
      onDelivery: (delivery) => seen.push(`${delivery.webhook} ${delivery.phase}`),
    });
    await until(async () => seen.length === 1 && (await pendingCount()) === 0);
    expect(api.calls).toEqual([]);
    expect(seen).toEqual(["hook SENT"]);
  });

  it("re-checks WebhookEvents stuck at QUEUED against the dispatcher (state changes trimmed from the stream)", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    await putDelivery("d6", "QUEUED", 1);
    await addStatusEntry("d6", "QUEUED", 1);
    const api = new FakeWebhookEventApi();
    await startMirror(
      api,
      {
        staleQueued: () =>
          [...api.objects.values()]
            .filter((e) => e.status?.phase === "QUEUED")
            .map((e) => ({ namespace: NS, name: e.metadata.name })),
      },
      "reader-1",
      100,
    );
    await until(() => api.objects.get("d6")?.status?.phase === "QUEUED");
    // The delivery went on, but its entries never reach this reader (trimmed).
    await putDelivery("d6", "SENT", 2);
    await until(() => api.objects.get("d6")?.status?.phase === "SENT");
    expect(api.calls).toEqual(["create d6", "status d6 QUEUED", "status d6 SENT", "labels d6 SENT"]);
  });

  it("does not retry a WebhookEvent the API server refuses as invalid: acknowledged, reported, the others go on", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    const api = new FakeWebhookEventApi();
    api.invalid.add("d-poison");
    const events: Array<{ kind: string; reason: string; note: string }> = [];
    await putDelivery("d-poison", "SENT", 1);
    await addStatusEntry("d-poison", "SENT", 1);
    await putDelivery("d-fine", "SENT", 1);
    await addStatusEntry("d-fine", "SENT", 1);
    await startMirror(api, {
      recordEvent: (regarding, input) =>
        events.push({ kind: regarding.kind, reason: input.reason, note: input.note ?? "" }),
    });
    await until(
      async () => api.objects.get("d-fine")?.status?.phase === "SENT" && (await pendingCount()) === 0,
    );
    expect(api.calls.filter((call) => call === "create d-poison")).toHaveLength(1);
    expect(events).toEqual([
      { kind: "Webhook", reason: "WebhookEventRejected", note: expect.stringContaining("d-poison") },
    ]);
    // the event log (the dispatcher's record) says why it has no WebhookEvent
    expect((await readDelivery(redis, "d-poison", keys))?.mirrorError).toMatch(
      /^the API server refused its WebhookEvent: /,
    );
    expect((await readDelivery(redis, "d-fine", keys))?.mirrorError).toBeUndefined();
  });

  it("shows a QUEUED WebhookEvent whose record vanished from Redis as lost: FAILED, Ready=False/Lost, a Warning Event", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    await putDelivery("d-lost", "QUEUED", 1);
    await addStatusEntry("d-lost", "QUEUED", 1);
    await putDelivery("d-done", "SENT", 1);
    await addStatusEntry("d-done", "SENT", 1);
    const api = new FakeWebhookEventApi();
    const events: Array<{ kind: string; name: string; reason: string }> = [];
    await startMirror(
      api,
      {
        staleQueued: () =>
          [...api.objects.values()]
            .filter((e) => e.status?.phase === "QUEUED")
            .map((e) => ({ namespace: NS, name: e.metadata.name })),
        recordEvent: (regarding, input) =>
          events.push({ kind: regarding.kind, name: regarding.metadata.name, reason: input.reason }),
      },
      "reader-1",
      100,
    );
    await until(() => api.objects.get("d-lost")?.status?.phase === "QUEUED");
    await until(() => api.objects.get("d-done")?.status?.phase === "SENT");
    // Redis loses its data (FLUSHALL, a restart without persistence, failover to an empty replica)
    await redis.del(keys.delivery("d-lost"), keys.delivery("d-done"));
    await until(() => api.objects.get("d-lost")?.status?.phase === "FAILED");
    const lost = api.objects.get("d-lost")!;
    expect(lost.metadata.labels?.["webhooks.dataforce.io/phase"]).toBe("FAILED");
    expect(lost.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "False",
      reason: "Lost",
    });
    expect(events).toEqual([{ kind: "WebhookEvent", name: "d-lost", reason: "DeliveryLost" }]);
    // a finished one whose record expired is left as it was
    expect(api.objects.get("d-done")?.status?.phase).toBe("SENT");
  });

  it("with a durable log store, a QUEUED WebhookEvent whose record is gone stays QUEUED and the dispatchers are asked (once per interval); marked lost only on their answer that the store lacks it", async () => {
    keys = keyspace(`mirror-${randomUUID().slice(0, 8)}`);
    // the dispatchers archive this keyspace to a store (they set the marker when they start)
    await redis.set(keys.archiveAdopted, String(Date.now()));
    await putDelivery("d-asked", "QUEUED", 1);
    await addStatusEntry("d-asked", "QUEUED", 1);
    const api = new FakeWebhookEventApi();
    const events: string[] = [];
    const registry = new Registry();
    await startMirror(
      api,
      {
        staleQueued: () =>
          [...api.objects.values()]
            .filter((e) => e.status?.phase === "QUEUED")
            .map((e) => ({ namespace: NS, name: e.metadata.name })),
        recordEvent: (_regarding, input) => events.push(input.reason),
      },
      "reader-1",
      100,
      registry,
    );
    await until(() => api.objects.get("d-asked")?.status?.phase === "QUEUED");
    // completed, archived and expired after the hot window, or lost: only the store can tell
    await redis.del(keys.delivery("d-asked"));
    const asked = async () =>
      (await registry.getSingleMetric("dataforce_operator_mirror_deliveries_total")?.get())?.values.find(
        (v) => v.labels.result === "asked",
      )?.value ?? 0;
    await until(async () => (await asked()) >= 5);
    expect(api.objects.get("d-asked")?.status?.phase).toBe("QUEUED");
    expect(events).toEqual([]);
    // re-checked every 100 ms, asked once (the interval is 5 min)
    const requests = await readStatusRequests(redis, keys, 10);
    expect(requests.map((entry) => entry.request)).toEqual([{ deliveryId: "d-asked", namespace: NS }]);

    // no dispatcher found it in the store
    await answerMissing(redis, keys, { deliveryId: "d-asked", namespace: NS });
    await until(() => api.objects.get("d-asked")?.status?.phase === "FAILED");
    expect(api.objects.get("d-asked")?.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "False",
      reason: "Lost",
    });
    expect(events).toEqual(["DeliveryLost"]);
    // the answer is used up
    expect(await redis.exists(keys.archiveMissing(NS, "d-asked"))).toBe(0);
  });
});
