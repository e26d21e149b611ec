import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import {
  type E2eWorld,
  INGEST_TOKEN,
  metricValue,
  type OperatorProcess,
  setupWorld,
} from "../e2e/harness.ts";
import { eventually } from "../e2e/k8s.ts";
import { startRedis, type TestRedis } from "../env/redis.ts";
import {
  accounts,
  BULK_RATE,
  leaseHolder,
  MIRRORED_RATE,
  setupAccounts,
  stopAndCount,
  targets,
  webhookEvents,
} from "./e2e-load.ts";
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

// The operator's leader is SIGKILLed mid-load; then Redis loses everything (FLUSHALL) mid-load.
// A Redis of this file's own, so the flush touches nothing else of the run. Two operator
// replicas with the suite's fast Lease (3 s), and QUEUED WebhookEvents re-checked against Redis
// every 2 s (OPERATOR_MIRROR_RECHECK_INTERVAL_MS; 60 s by default) so a lost record shows in time.
// During the flush the mirrored account's receiver fails every first attempt, so a couple of
// seconds of its deliveries are waiting in Redis for their retry (e2e-load.ts: 2 s) when it goes.

const OPERATOR_ENV = { OPERATOR_LOG_LEVEL: "info", OPERATOR_MIRROR_RECHECK_INTERVAL_MS: "2000" };

let redis: TestRedis | undefined;
let world: E2eWorld;
let receiver: LoadReceiver;
const operators = new Map<string, OperatorProcess>();

beforeAll(async () => {
  redis = await startRedis();
  world = await setupWorld("faults-ops", ["bulk", "mirrored"], { redisUrl: redis.url });
  receiver = await startLoadReceiver();
  operators.set("leader-a", await world.startOperator("leader-a", OPERATOR_ENV));
  await eventually(async () => expect(await leaseHolder(world)).toBe("leader-a"), 15_000, 100);
  operators.set("standby-b", await world.startOperator("standby-b", OPERATOR_ENV));
  await setupAccounts(world, receiver);
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
  await redis?.stop();
});

function startSteadyLoad() {
  receiver.reset();
  return startLoad({
    urls: [world.dispatcher.url],
    token: INGEST_TOKEN,
    eventsPerSecond: BULK_RATE + MIRRORED_RATE,
    targets: targets(world),
  });
}

describe("operator and Redis faults on Kubernetes", () => {
  it("operator leader kill -9 mid-load: deliveries unaffected, the standby takes over, WebhookEvents catch up", async ({
    task,
  }) => {
    const keys = keyspace(world.keyTag);
    const load = startSteadyLoad();
    await sleep(2_000);
    const leader = await leaseHolder(world);
    await operators.get(leader)!.kill();
    const killedAt = Date.now();
    const standby = [...operators.keys()].find((name) => name !== leader)!;
    await eventually(async () => expect(await leaseHolder(world)).toBe(standby), 15_000, 100);
    const takeoverMs = Date.now() - killedAt;
    await sleep(3_000);
    const { result, counts, caughtUpAt, mirroredCount } = await stopAndCount(world, keys, load, receiver);
    reportRow(
      task,
      faultRow(
        8,
        "operator leader `kill -9` (standby running)",
        result,
        counts,
        "0",
        `standby leading ${seconds(takeoverMs)} after (lease 3 s); ${mirroredCount} WebhookEvents caught up ${seconds(caughtUpAt - result.endedAt)} after the load`,
      ),
    );

    expect(counts.deliveries).toBeGreaterThan(500);
    expect(counts.lostIds).toEqual([]);
    expect(counts.failed).toBe(0);
    expect(counts.unexpected).toEqual([]);
    expect(counts.differing).toEqual([]);
    expect(result.retried).toBe(0); // the data plane does not need the operator
    expect(takeoverMs).toBeLessThan(3_000 + 2 * 500 + 3_000); // lease + a retry period or two + kubectl on a busy machine
    expect(mirroredCount).toBeGreaterThan(50);
    operators.delete(leader);
  }, 120_000);

  it("FLUSHALL mid-load: ingest 503 until the operator rewrote the routing, then delivery resumes; what was lost is counted and shown", async ({
    task,
  }) => {
    const keys = keyspace(world.keyTag);
    const metrics = async () => (await fetch(`${world.dispatcher.url}/metrics`)).text();
    const lostMetric = (text: string) => metricValue(text, "dataforce_dispatcher_deliveries_lost_total");
    const lostBefore = lostMetric(await metrics());
    // the mirrored account's receiver fails every first attempt: at the flush, a couple of
    // seconds of its deliveries wait in Redis for their retry (QUEUED WebhookEvents)
    receiver.fault("/mirrored", (earlier) => ({ kind: "respond", status: earlier === 0 ? 503 : 200 }));
    const load = startSteadyLoad();
    await sleep(2_000);
    const flushedAt = Date.now();
    await world.redis.flushall();
    const flushDoneAt = Date.now();
    await sleep(5_000);
    const result = await load.stop();
    await drain(world.redis, keys, receiver);
    receiver.fault("/mirrored", undefined);

    // After the flush the log only knows what came after it: take FAILED from there, and from
    // the WebhookEvents (a QUEUED one whose record vanished is shown FAILED, Ready=False/Lost).
    const { bulk, mirrored } = accounts(world);
    const phases = await redisPhases(
      world.redis,
      keys,
      result.events.flatMap((event) => event.webhookIds),
    );
    const ownIds = new Set(result.events.flatMap((event) => event.webhookIds));
    // no WebhookEvent of this load is left QUEUED once the re-check ran
    const mirroredEvents = await eventually(
      async () => {
        const events = new Map([...(await webhookEvents(mirrored)), ...(await webhookEvents(bulk))]);
        const queued = [...events].filter(([id, event]) => ownIds.has(id) && event.phase === "QUEUED");
        expect(queued.map(([id]) => id)).toEqual([]);
        return events;
      },
      30_000,
      500,
    );
    const shownLost = [...mirroredEvents].filter(([id, event]) => ownIds.has(id) && event.reason === "Lost");
    const failed = failedOf(phases);
    for (const [id, event] of mirroredEvents) if (event.phase === "FAILED") failed.add(id);
    const counts = account(result.events, receiver.copies(), failed);
    const lostCounted = lostMetric(await metrics()) - lostBefore;
    const firstAcceptedAfter = result.events
      .filter((event) => event.refusedAt.length > 0)
      .reduce((first, event) => Math.min(first, event.acceptedAt), Number.POSITIVE_INFINITY);
    const lostEvents = counts.lostIds.map((id) => counts.eventOf.get(id)!);
    const lostMirrored = lostEvents.filter((event) => event.namespace === mirrored).length;
    const oldestLostMs = Math.max(0, ...lostEvents.map((event) => flushDoneAt - event.acceptedAt));
    reportRow(
      task,
      faultRow(
        4,
        "Redis `FLUSHALL` (all data lost)",
        result,
        counts,
        "just accepted only",
        `503 for ${seconds((result.refusedUntil ?? flushedAt) - (result.refusedFrom ?? flushedAt))}, accepted ${seconds(firstAcceptedAfter - flushedAt)} after the flush; failed: flushed retries, ${shownLost.length} WebhookEvents Ready=False/Lost; lost: accepted ≤ ${oldestLostMs} ms before, not yet mirrored (${lostMirrored} mirrored, ${lostEvents.length - lostMirrored} bulk); deliveries_lost_total +${lostCounted}`,
      ),
    );

    expect(counts.unexpected).toEqual([]);
    expect(counts.differing).toEqual([]);
    // detected: producers were refused (503) instead of events being recorded as unroutable…
    expect(result.retried).toBeGreaterThan(0);
    // …repaired: ingest is back within seconds, and everything accepted since is delivered
    expect(firstAcceptedAfter - flushedAt).toBeLessThan(10_000);
    const after = result.events.filter((event) => event.acceptedAt >= firstAcceptedAfter);
    expect(after.length).toBeGreaterThan(200);
    const lost = new Set(counts.lostIds);
    expect(after.filter((event) => event.webhookIds.some((id) => lost.has(id)))).toEqual([]);
    // the retries waiting in Redis were flushed, and the WebhookEvents say so
    expect(shownLost.length).toBeGreaterThan(0);
    expect(shownLost.filter(([id]) => (counts.eventOf.get(id)?.firstTriedAt ?? 0) > flushDoneAt)).toEqual([]);
    // A loss nothing shows is work stored just before the flush (its request began before the
    // flush ended), younger than the mirrored account's retry delay: older work had finished.
    expect(
      lostEvents.filter((event) => event.firstTriedAt > flushDoneAt || event.acceptedAt < flushedAt - 3_000),
    ).toEqual([]);
  }, 120_000);
});
