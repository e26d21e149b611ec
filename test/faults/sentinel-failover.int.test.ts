import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeRedis, connectRedis, RedisConnectionSchema } from "../../common/redis-connection.ts";
import { readDelivery } from "../../contract/deliveries.ts";
import { type Dispatcher, startDispatcher } from "../../dispatcher/dispatcher.ts";
import { type Failover, type SentinelGroup, startSentinelGroup } from "../env/sentinel.ts";
import { eventually, INGEST_TOKEN, routeNamespaces, testRouting, testSettings } from "../support/fixtures.ts";
import { faultRow, reportRow } from "./fault-table.ts";
import {
  account,
  drain,
  failedOf,
  type LoadReceiver,
  redisPhases,
  seconds,
  startLoad,
  startLoadReceiver,
} from "./load.ts";

// The primary of a Sentinel-managed Redis dies (SIGKILL) while producers publish ~200 events/s
// through a dispatcher (the fault suite's driver, load.ts). Everything is real: redis-server ×2,
// Sentinel ×3, the dispatcher's own Sentinel client, an HTTP receiver. Replication is
// asynchronous, so a write the primary acknowledged but had not yet sent to its replica is gone
// after the failover: the test does not pretend otherwise, it counts.

const NAMESPACE = "ha";
const WEBHOOK = "orders";
const PATH = "/ha";
const KILL_AFTER_MS = 2_000;
const LOAD_AFTER_FAILOVER_MS = 4_000;

let group: SentinelGroup;
let receiver: LoadReceiver;
let admin: Redis;
let dispatcher: Dispatcher | undefined;

beforeAll(async () => {
  group = await startSentinelGroup({ downAfterMs: 1_000, failoverTimeoutMs: 5_000 });
  receiver = await startLoadReceiver();
  admin = connectRedis(sentinelSettings(), { maxRetriesPerRequest: null });
  admin.on("error", () => {}); // it reconnects through the Sentinels after the failover
  await admin.ping();
  // the tests count subscriptions on the Sentinels: start from the admin's three
  await eventually(async () => ((await group.sentinelSubscribers()) === 3 ? true : undefined));
}, 40_000);
afterAll(async () => {
  // bounded: a stop that cannot hand work back must not hold the run
  await Promise.race([dispatcher?.stop(), sleep(5_000)]);
  admin?.disconnect();
  await receiver?.close();
  await group?.stop();
});

function sentinelSettings() {
  return RedisConnectionSchema.parse({
    redisSentinels: group.sentinels,
    redisSentinelMaster: group.masterName,
  });
}

describe("Redis Sentinel", () => {
  it("closing a client leaves none of its failover-detector subscriptions on the Sentinels", async () => {
    const before = await group.sentinelSubscribers();
    /** Subscriptions still on the Sentinels after `close`. */
    const leftAfter = async (close: (client: Redis) => Promise<unknown>) => {
      const client = connectRedis(sentinelSettings());
      client.on("error", () => {});
      try {
        await client.ping();
        // one subscription to +switch-master per Sentinel, made just after the connection
        await eventually(async () => ((await group.sentinelSubscribers()) === before + 3 ? true : undefined));
        await close(client);
        await sleep(300);
        return (await group.sentinelSubscribers()) - before;
      } finally {
        client.disconnect();
      }
    };
    expect(await leftAfter(closeRedis)).toBe(0);
    // why closeRedis exists: quit() alone leaves them, reconnecting (ioredis #1362). When this
    // fails, ioredis has fixed it and closeRedis may become a plain quit().
    expect(await leftAfter((client) => client.quit())).toBe(3);
  });

  it("resumes delivery after the primary is killed, and accounts for every accepted event", async ({
    task,
  }) => {
    const subscribersBefore = await group.sentinelSubscribers();
    dispatcher = await startDispatcher(
      testSettings("redis://127.0.0.1:6379", {
        redisSentinels: group.sentinels,
        redisSentinelMaster: group.masterName,
      }),
    );
    const started = dispatcher;
    const keys = started.keys;
    await routeNamespaces(admin, dispatcher, [
      testRouting(NAMESPACE, [{ name: WEBHOOK, event: "job.created", url: receiver.url(PATH) }]),
    ]);

    // load, then the primary's death mid-load, then load for a while on the promoted replica
    const load = startLoad({
      urls: [started.url],
      token: INGEST_TOKEN,
      eventsPerSecond: 200,
      // ingest should be back within seconds of the promotion
      giveUpMs: 15_000,
      targets: [{ namespace: NAMESPACE, type: "job.created", webhooks: [WEBHOOK] }],
    });
    await sleep(KILL_AFTER_MS);
    const failover: Failover = await group.failover();
    await sleep(LOAD_AFTER_FAILOVER_MS);
    const result = await load.stop();
    expect(failover.promotedPort).not.toBe(failover.killedPort);
    await drain(admin, keys, receiver, { quietMs: 2_000 });

    // the accounting
    const phases = await redisPhases(
      admin,
      keys,
      result.events.flatMap((event) => event.webhookIds),
    );
    const counts = account(result.events, receiver.copies(), failedOf(phases));
    const afterFailover = result.events.filter((event) => event.acceptedAt > failover.promotedAt);
    const retriedEvents = result.events.filter((event) => event.refusedAt.length > 0);
    // what became of each lost delivery on the promoted replica: no record at all, or a record never delivered
    const lostRecords = await Promise.all(counts.lostIds.map((id) => readDelivery(admin, id, keys)));
    const failoverMs = failover.promotedAt - failover.killedAt;
    const ingestOutageMs = result.refusedFrom ? (result.refusedUntil ?? 0) - result.refusedFrom : 0;
    // from the promotion to the first 202 of a producer that had been refused
    const resumedMs = Math.min(...retriedEvents.map((event) => event.acceptedAt)) - failover.promotedAt;
    reportRow(
      task,
      faultRow(
        5,
        "Redis primary `kill -9`, Sentinel failover",
        result,
        counts,
        "unreplicated only",
        `promoted ${seconds(failoverMs)} after the kill (down-after 1 s); ingest 503 for ${seconds(ingestOutageMs)}, back ${seconds(resumedMs)} after the promotion${counts.lost ? `; ${lostRecords.filter((record) => record === null).length} lost without a record` : ""}`,
      ),
    );

    expect(counts.deliveries).toBeGreaterThan(300);
    // nothing was delivered that was not accepted, and copies of a delivery are the same notification
    expect(counts.unexpected).toEqual([]);
    expect(counts.differing).toEqual([]);
    // every request was a first copy or a duplicate (the receiver answered 200 to all)
    expect(receiver.count()).toBe(counts.sent + counts.duplicated);
    expect(counts.failed).toBe(0);
    // the outage was seen (producers were refused and retried) and did not outlast the failover by much
    expect(result.retried).toBeGreaterThan(0);
    expect(ingestOutageMs).toBeLessThan(failoverMs + 5_000);
    // delivery resumed: a steady stream of events was accepted on the promoted replica, all delivered
    expect(afterFailover.length).toBeGreaterThan(100);
    const lost = new Set(counts.lostIds);
    expect(afterFailover.filter((event) => event.webhookIds.some((id) => lost.has(id)))).toEqual([]);
    // a loss can only be a write the old primary acknowledged before it died (asynchronous replication)
    expect(counts.lostIds.filter((id) => counts.eventOf.get(id)!.acceptedAt > failover.killedAt)).toEqual([]);
    expect((await fetch(`${started.url}/readyz`)).status).toBe(200);

    // a stopped dispatcher leaves nothing connected to the Sentinels (its five clients' detectors)
    await dispatcher.stop();
    dispatcher = undefined;
    await eventually(
      async () => ((await group.sentinelSubscribers()) === subscribersBefore ? true : undefined),
      5_000,
      "the dispatcher's Sentinel subscriptions to close",
    );
  }, 60_000);
});
