import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { readDeliveries } from "../contract/deliveries.ts";
import { deliveryId } from "../contract/delivery-id.ts";
import { CONSUMER_GROUPS, type Keyspace, keyspace } from "../contract/keys.ts";
import { type NamespaceRoutingInput, writeNamespaceRouting } from "../contract/routing-config.ts";
import { type DispatcherProcess, startDispatcherProcess } from "../test/support/dispatcher-process.ts";
import { api, eventually, TEST_SECRET_BOX, testRouting, uniqueKeyTag } from "../test/support/fixtures.ts";
import { type ReceivedRequest, type Receiver, startReceiver } from "../test/support/receiver.ts";

// Webhook.spec.ordering: Ordered, end to end through dispatchers run as real processes: one at a
// time, in event order, across a `kill -9` and across replicas. (The queue's Redis protocol on
// its own: contract/ordered-queue.int.test.ts.)

const NS = "order";
let redis: Redis;
let receiver: Receiver;
let logDir: string;
const children: DispatcherProcess[] = [];

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
  logDir = await mkdtemp(join(tmpdir(), "dispatcher-ordering-"));
});
afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
});
afterAll(async () => {
  await receiver.close();
  redis.disconnect();
  if (!process.env.KEEP_DISPATCHER_LOGS) await rm(logDir, { recursive: true, force: true });
  else console.log(`dispatcher logs in ${logDir}`);
});

async function start(
  keyTag: string,
  name: string,
  env: Record<string, string> = {},
): Promise<DispatcherProcess> {
  const child = await startDispatcherProcess({ name, redisUrl: inject("redisUrl"), keyTag, logDir, env });
  children.push(child);
  return child;
}

/** Event ids `evt-000`…, so that their order is their number's. */
function eventIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `evt-${String(i).padStart(3, "0")}`);
}

/** Ingests the events in order: batches one after the other, each in order. */
async function ingest(url: string, ids: readonly string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 50) {
    const events = ids
      .slice(i, i + 50)
      .map((id) => ({ type: "job.created", namespace: NS, id, data: { id } }));
    expect((await api(url, "POST", "/v1/events/batch", { events })).status).toBe(202);
  }
}

/** The event ids of the requests a path received, in the order they arrived. */
function receivedEventIds(path: string): string[] {
  return receiver
    .requests(path)
    .map((request: ReceivedRequest) => (JSON.parse(request.body) as { id: string }).id);
}

async function phases(keys: Keyspace, webhook: string, ids: readonly string[]): Promise<string[]> {
  const reads = await readDeliveries(
    redis,
    ids.map((id) => deliveryId(NS, id, webhook)),
    keys,
  );
  return reads.map((read) => read?.view.header.phase ?? "missing");
}

async function allSettled(keys: Keyspace, webhook: string, ids: readonly string[], timeoutMs: number) {
  return eventually(
    async () => {
      const current = await phases(keys, webhook, ids);
      return current.every((phase) => phase === "SENT" || phase === "FAILED") ? current : undefined;
    },
    timeoutMs,
    "every delivery SENT or FAILED",
  );
}

/** Nothing left behind: no queue, no pending or scheduled work. */
async function expectClean(keys: Keyspace, webhook: string): Promise<void> {
  expect(await redis.exists(keys.orderedQueue(NS, webhook))).toBe(0);
  expect(await redis.scard(keys.orderedQueues)).toBe(0);
  expect(await redis.zcard(keys.scheduled)).toBe(0);
  const [pending] = (await redis.xpending(keys.deliveries, CONSUMER_GROUPS.delivery)) as [number];
  expect(pending).toBe(0);
}

/** The ordered-queue gauges a dispatcher exports. */
async function gauges(url: string): Promise<{ queues: number; deliveries: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) =>
    Number(new RegExp(`^dataforce_dispatcher_${name} (\\d+)$`, "m").exec(text)?.[1]);
  return { queues: value("ordered_queues"), deliveries: value("ordered_queue_deliveries") };
}

function orderedRouting(path: string, overrides: Partial<NamespaceRoutingInput> = {}): NamespaceRoutingInput {
  return testRouting(
    NS,
    [{ name: path.slice(1), event: "job.created", url: receiver.url(path), ordering: "Ordered" }],
    overrides,
  );
}

describe("an Ordered webhook", () => {
  it("receives 200 events in order across a dispatcher kill -9, repeating only the one in flight", async () => {
    const keyTag = uniqueKeyTag();
    const keys = keyspace(keyTag);
    const ids = eventIds(200);
    // the 61st delivery is answered only after 3 s the first time: the dispatcher is killed
    // while it is in flight (received, not yet answered, so not recorded SENT)
    const held = ids[60]!;
    receiver.on("/crash", (request) => {
      const { id } = JSON.parse(request.body) as { id: string };
      const firstTime = receivedEventIds("/crash").filter((seen) => seen === id).length === 1;
      return { kind: "respond", status: 200, delayMs: id === held && firstTime ? 3_000 : 2 };
    });
    await writeNamespaceRouting(
      redis,
      orderedRouting("/crash", {
        delivery: {
          maxAttempts: 3,
          timeoutMs: 10_000,
          backoff: { initialDelayMs: 50, maxDelayMs: 50, multiplier: 1 },
        },
      }),
      keys,
      TEST_SECRET_BOX,
    );

    const first = await start(keyTag, "ordered-a");
    await ingest(first.url, ids);
    await eventually(
      () => (receivedEventIds("/crash").includes(held) ? true : undefined),
      60_000,
      `${held} in flight`,
    );
    await first.kill();
    expect(first.proc.child.signalCode).toBe("SIGKILL");
    // nothing behind the head went out meanwhile
    expect(receivedEventIds("/crash")).toEqual(ids.slice(0, 61));

    await start(keyTag, "ordered-b");
    expect(await allSettled(keys, "crash", ids, 90_000)).toEqual(ids.map(() => "SENT"));

    const received = receivedEventIds("/crash");
    // "in order": the sequence of first receipts is the event order, every event in it once…
    expect([...new Set(received)]).toEqual(ids);
    // …and no request ever went back in the sequence: a repeat came right after its original
    for (let i = 1; i < received.length; i++)
      expect(received[i]! >= received[i - 1]!, `request ${i}`).toBe(true);
    // the only repeat is the delivery in flight at the kill, claimed by the new dispatcher
    const repeated = ids.filter((id) => received.filter((seen) => seen === id).length > 1);
    expect(repeated).toEqual([held]);
    // every copy carried the same webhook-id (receivers de-duplicate on it)
    const heldIds = receiver
      .requests("/crash")
      .filter((request) => request.body.includes(`"${held}"`))
      .map((request) => request.headers["webhook-id"]);
    expect(new Set(heldIds)).toEqual(new Set([deliveryId(NS, held, "crash")]));
    await expectClean(keys, "crash");
  }, 180_000);

  it("holds the deliveries behind a failing head until it is FAILED", async () => {
    const keyTag = uniqueKeyTag();
    const keys = keyspace(keyTag);
    const ids = eventIds(5);
    // the first event's endpoint call always fails; the others succeed
    receiver.on("/blocked", (request) =>
      request.body.includes(`"${ids[0]}"`)
        ? { kind: "respond", status: 500 }
        : { kind: "respond", status: 200 },
    );
    await writeNamespaceRouting(
      redis,
      orderedRouting("/blocked", {
        delivery: {
          maxAttempts: 3,
          timeoutMs: 2_000,
          backoff: { initialDelayMs: 300, maxDelayMs: 300, multiplier: 1 },
        },
      }),
      keys,
      TEST_SECRET_BOX,
    );
    const dispatcher = await start(keyTag, "ordered-blocked");
    await ingest(dispatcher.url, ids);

    expect(await allSettled(keys, "blocked", ids, 60_000)).toEqual([
      "FAILED",
      "SENT",
      "SENT",
      "SENT",
      "SENT",
    ]);
    const requests = receiver.requests("/blocked");
    // the head's 3 attempts (with their backoff) first, then the rest, in order
    expect(receivedEventIds("/blocked")).toEqual([ids[0], ids[0], ids[0], ...ids.slice(1)]);
    expect(requests[3]!.receivedAt - requests[0]!.receivedAt).toBeGreaterThanOrEqual(2 * 300 * 0.8 - 5);

    // a retry of the FAILED head joins the tail: the queue is empty, so it goes at once
    receiver.on("/blocked", { kind: "respond", status: 200 });
    const retried = await api(
      dispatcher.url,
      "POST",
      `/v1/deliveries/${deliveryId(NS, ids[0]!, "blocked")}/retry`,
      {
        token: "again",
      },
    );
    expect(retried.status).toBe(202);
    expect(await allSettled(keys, "blocked", ids, 30_000)).toEqual(ids.map(() => "SENT"));
    expect(receivedEventIds("/blocked").at(-1)).toBe(ids[0]);
    await expectClean(keys, "blocked");
  }, 120_000);

  it("holds its queue while paused, attempts unspent, and resumes in order", async () => {
    const keyTag = uniqueKeyTag();
    const keys = keyspace(keyTag);
    const ids = eventIds(8);
    receiver.on("/paused", { kind: "respond", status: 200, delayMs: 150 });
    const routing = (paused: boolean) =>
      testRouting(NS, [
        { name: "paused", event: "job.created", url: receiver.url("/paused"), ordering: "Ordered", paused },
      ]);
    await writeNamespaceRouting(redis, routing(false), keys, TEST_SECRET_BOX);
    const dispatcher = await start(keyTag, "ordered-paused");
    await ingest(dispatcher.url, ids);
    await eventually(() => (receiver.requests("/paused").length >= 2 ? true : undefined), 30_000, "2 sent");
    await writeNamespaceRouting(redis, routing(true), keys, TEST_SECRET_BOX);

    // paused: at most the one in flight when the pause arrived goes out; the rest wait QUEUED
    await eventually(
      async () => {
        const before = receiver.requests("/paused").length;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        return receiver.requests("/paused").length === before ? true : undefined;
      },
      30_000,
      "no more requests while paused",
    );
    const whilePaused = receiver.requests("/paused").length;
    expect(whilePaused).toBeLessThan(ids.length);
    const held = await phases(keys, "paused", ids);
    expect(held.slice(whilePaused)).toEqual(ids.slice(whilePaused).map(() => "QUEUED"));
    const head = await readDeliveries(redis, [deliveryId(NS, ids[whilePaused]!, "paused")], keys);
    expect(head[0]?.view.header.attemptCount).toBe(0);
    // the queue is in the gauges (no per-webhook label)
    expect(await gauges(dispatcher.url)).toEqual({ queues: 1, deliveries: ids.length - whilePaused });

    await writeNamespaceRouting(redis, routing(false), keys, TEST_SECRET_BOX);
    expect(await allSettled(keys, "paused", ids, 60_000)).toEqual(ids.map(() => "SENT"));
    expect(receivedEventIds("/paused")).toEqual(ids);
    await expectClean(keys, "paused");
    expect(await gauges(dispatcher.url)).toEqual({ queues: 0, deliveries: 0 });
  }, 120_000);

  it("is never sent to concurrently by two replicas", async () => {
    const keyTag = uniqueKeyTag();
    const keys = keyspace(keyTag);
    const ids = eventIds(40);
    const DELAY_MS = 25;
    receiver.on("/pair", { kind: "respond", status: 200, delayMs: DELAY_MS });
    // a generous timeout: an attempt timed out on a busy machine would be repeated (in order, but
    // overlapping its first copy's late answer)
    await writeNamespaceRouting(
      redis,
      orderedRouting("/pair", { delivery: { maxAttempts: 3, timeoutMs: 20_000 } }),
      keys,
      TEST_SECRET_BOX,
    );
    // no claims of live work on a busy machine (a stall of a second would be taken for a crash)
    const env = { DISPATCHER_CLAIM_IDLE_MS: "10000" };
    const [a, b] = await Promise.all([
      start(keyTag, "ordered-pair-a", env),
      start(keyTag, "ordered-pair-b", env),
    ]);
    // producers publish through both replicas
    await ingest(a!.url, ids.slice(0, 20));
    await ingest(b!.url, ids.slice(20));

    expect(await allSettled(keys, "pair", ids, 60_000)).toEqual(ids.map(() => "SENT"));
    expect(receivedEventIds("/pair")).toEqual(ids);
    // one at a time: each request arrived after the previous one was answered
    const arrivals = receiver.requests("/pair").map((request) => request.receivedAt);
    for (let i = 1; i < arrivals.length; i++)
      expect(arrivals[i]! - arrivals[i - 1]!, `gap before request ${i}`).toBeGreaterThanOrEqual(DELAY_MS - 1);
    // and both replicas took turns at it
    const sent = await Promise.all(
      [a!, b!].map(async (child) => {
        const text = await (await fetch(`${child.url}/metrics`)).text();
        return Number(
          /^dataforce_dispatcher_delivery_attempts_total\{outcome="success"\} (\d+)$/m.exec(text)?.[1],
        );
      }),
    );
    expect(sent[0]! + sent[1]!).toBe(40);
    expect(sent[0]).toBeGreaterThan(0);
    expect(sent[1]).toBeGreaterThan(0);
    await expectClean(keys, "pair");
  }, 120_000);
});
