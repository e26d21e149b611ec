import { Redis } from "ioredis";
import { pino } from "pino";
import type { Counter } from "prom-client";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { countFanoutFailure, readEvent } from "../../contract/deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace, keyspace } from "../../contract/keys.ts";
import { onePartition } from "../../contract/partitions.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { ensureConsumerGroup } from "../../contract/streams/stream-consumer.ts";
import { eventually, TEST_SECRET_BOX, testRouting, testSettings } from "../../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../../test/support/receiver.ts";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.ts";
import type { Settings } from "../config.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher.ts";
import { createMetrics, type Metrics } from "../metrics.ts";
import { RoutingWatcher } from "../routing-table.ts";
import { Fanout } from "./fanout.ts";
import { FanoutWorker, MAX_FANOUT_FAILURES } from "./fanout-worker.ts";

// The fan-out of ingest stream entries when its script keeps failing on a batch, and when Redis
// is unreachable: only the former may cost an entry its fan-out.

let redis: Redis;
let receiver: Receiver;
let settings: Settings;
let keys: Keyspace;
let dispatcher: Dispatcher | undefined;
const cleanups: Array<() => unknown> = [];

beforeEach(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
  settings = testSettings(inject("redisUrl"));
  keys = keyspace(settings.keyTag);
  await writeNamespaceRouting(
    redis,
    testRouting("team-a", [{ name: "jobs", event: "job.created", url: receiver.url("/jobs") }]),
    keys,
    TEST_SECRET_BOX,
  );
  await ensureConsumerGroup(redis, keys.events, CONSUMER_GROUPS.fanout);
});
afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await receiver.close();
  redis.disconnect();
});

const goodEvent = (id: string) => ["type", "job.created", "namespace", "team-a", "id", id, "data", "{}"];

/**
 * An entry that passes Redis but breaks the fan-out script: it is invalid (no `type`), and the
 * script moves invalid entries to the dead letters with `redis.call(unpack(args))` over all of
 * their fields, which Lua refuses beyond ~8000 values ("too many results to unpack").
 */
const scriptBreakingEntry = () => [
  "namespace",
  "team-a",
  "data",
  "{}",
  ...Array.from({ length: 5_000 }, (_, i) => [`x${i}`, "v"]).flat(),
];

function counted<T extends string>(counter: Counter<T>, labels: Partial<Record<T, string>>): Promise<number> {
  return counter.get().then(({ values }) => {
    const matches = values.filter((v) =>
      Object.entries(labels).every(([name, value]) => v.labels[name as T] === value),
    );
    return matches.reduce((sum, v) => sum + v.value, 0);
  });
}

async function pending(): Promise<number> {
  return Number(((await redis.xpending(keys.events, CONSUMER_GROUPS.fanout)) as [number])[0]);
}

async function deadLetter(entryId: string): Promise<Record<string, string> | undefined> {
  const entries = await redis.xrange(keys.deadLetters, "-", "+");
  const found = entries.find(([, fields]) => fields[0] === "entryId" && fields[1] === entryId);
  if (!found) return undefined;
  const [, fields] = found;
  return Object.fromEntries(
    Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]),
  );
}

describe("a batch whose fan-out script keeps failing", () => {
  it("is split: the good entries are fanned out and the entry that breaks it goes to the dead letters", async () => {
    // one batch: the group starts before all three, and the dispatcher reads up to 256 at once
    const before = await redis.xadd(keys.events, "*", ...goodEvent("evt-before"));
    const bad = await redis.xadd(keys.events, "*", ...scriptBreakingEntry());
    const after = await redis.xadd(keys.events, "*", ...goodEvent("evt-after"));
    // one holder: no claim of the entry while its failures are being counted
    dispatcher = await startDispatcher({ ...settings, claimIdleMs: 30_000 });

    const letter = await eventually(() => deadLetter(bad!), 15_000, "the bad entry in the dead letters");
    expect(letter.reason).toMatch(
      new RegExp(
        `fan-out failed ${MAX_FANOUT_FAILURES} times: ERR user_script:\\d+: too many results to unpack`,
      ),
    );
    expect(letter.reason).toMatch(/type/); // why it was invalid in the first place
    expect(letter.x4999).toBe("v"); // the entry as written, for inspection

    for (const id of ["evt-before", "evt-after"]) {
      expect(await readEvent(redis, "team-a", id, keys)).toMatchObject({ routing: "routed" });
      await eventually(() => receiver.requests("/jobs").find((r) => r.body.includes(`"${id}"`)));
    }
    expect((await deadLetter(before!)) ?? (await deadLetter(after!))).toBeUndefined();
    await eventually(async () => ((await pending()) === 0 ? true : undefined), 5_000, "nothing pending");
    expect(await redis.exists(keys.fanoutFailures(bad!))).toBe(0);
    const { eventsRejected } = dispatcher.metrics;
    expect(await counted(eventsRejected, { source: "stream", reason: "fanout-failed" })).toBe(1);
    // counted once, under why it was dead-lettered in the end
    expect(await counted(eventsRejected, { source: "stream", reason: "invalid" })).toBe(0);
  });

  it("goes on from the failures counted by a replica that died: another one's claim dead-letters it", async () => {
    const bad = await redis.xadd(keys.events, "*", ...scriptBreakingEntry());
    // a replica read it, failed on it one short of the limit, and died
    await redis.xreadgroup(
      "GROUP",
      CONSUMER_GROUPS.fanout,
      "dead-replica",
      "COUNT",
      10,
      "STREAMS",
      keys.events,
      ">",
    );
    for (let i = 1; i < MAX_FANOUT_FAILURES; i++) await countFanoutFailure(redis, bad!, 60_000, keys);
    dispatcher = await startDispatcher(settings); // claims entries idle for claimIdleMs (1 s)

    const letter = await eventually(() => deadLetter(bad!), 15_000, "the claimed entry in the dead letters");
    expect(letter.reason).toMatch(new RegExp(`fan-out failed ${MAX_FANOUT_FAILURES} times`));
    expect(await pending()).toBe(0);
    const { claimed, redisErrors } = dispatcher.metrics;
    expect(await counted(claimed, { stream: "events" })).toBeGreaterThanOrEqual(1);
    // its first failure here was its last: no retry, so no retried step reported
    expect(await counted(redisErrors, { loop: "fanout-record" })).toBe(0);
  });
});

describe("an unreachable Redis", () => {
  let metrics: Metrics;
  let proxy: TcpProxy;
  let worker: FanoutWorker;

  /** A worker whose fan-out goes through a proxy that can be cut; its stream commands do not. */
  async function startWorker(): Promise<void> {
    const url = new URL(inject("redisUrl"));
    proxy = await startTcpProxy(Number(url.port));
    const logger = pino({ level: "silent" });
    metrics = createMetrics(async () => null);
    // as the API's connection: commands fail instead of waiting for the connection to come back
    const flaky = new Redis({
      host: "127.0.0.1",
      port: proxy.port,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 50,
    });
    flaky.on("error", () => {});
    const [reader, subscriber] = [new Redis(url.href), new Redis(url.href)];
    const routing = new RoutingWatcher({
      redis,
      subscriber,
      keys,
      box: TEST_SECRET_BOX,
      pollMs: 100,
      logger,
      metrics,
    });
    await routing.start();
    const fanout = new Fanout({
      redis: flaky,
      partitions: onePartition(keys),
      routing,
      metrics,
      logger,
      retentionMs: 60_000,
      statusStreamMaxLen: 1_000,
      idempotencyWindowMs: 60_000,
    });
    worker = new FanoutWorker({
      redis,
      reader,
      keys,
      consumer: "outage-test",
      fanout,
      metrics,
      logger,
      maxEventBytes: 65_536,
      claimIdleMs: 60_000,
    });
    await worker.start();
    cleanups.push(
      () => proxy.close(),
      () => {
        for (const client of [flaky, reader, subscriber]) client.disconnect();
      },
      () => routing.stop(),
      () => worker.stop(),
    );
  }

  it("is retried for as long as it lasts and dead-letters nothing", async () => {
    await startWorker();
    proxy.cut();
    // in one transaction: the worker reads both in one batch
    const added = await redis
      .multi()
      .xadd(keys.events, "*", ...goodEvent("evt-down-1"))
      .xadd(keys.events, "*", ...goodEvent("evt-down-2"))
      .exec();
    const ids = (added ?? []).map(([, id]) => String(id));
    // more failed tries than an entry that breaks the script gets before the dead letters
    await eventually(
      async () =>
        (await counted(metrics.redisErrors, { loop: "fanout-record" })) > MAX_FANOUT_FAILURES + 1
          ? true
          : undefined,
      15_000,
      "failed fan-outs while Redis is unreachable",
    );
    expect(await redis.xlen(keys.deadLetters)).toBe(0);
    expect(await pending()).toBe(2);
    for (const id of ids) expect(await redis.exists(keys.fanoutFailures(id))).toBe(0);

    proxy.restore();
    await eventually(
      async () => ((await pending()) === 0 ? true : undefined),
      10_000,
      "the fan-out after the outage",
    );
    for (const id of ["evt-down-1", "evt-down-2"]) {
      expect(await readEvent(redis, "team-a", id, keys)).toMatchObject({ routing: "routed" });
    }
    expect(await redis.xlen(keys.deadLetters)).toBe(0);
    expect(await counted(metrics.eventsRejected, { reason: "fanout-failed" })).toBe(0);
  });
});
