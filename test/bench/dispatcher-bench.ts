import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { Pool } from "undici";
import { type Keyspace, keyspace } from "../../contract/keys.ts";
import { notificationPayload } from "../../contract/notification.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { ArchiveStore } from "../../dispatcher/archive/archive-store.ts";
import { DeliveryClient } from "../../dispatcher/delivery/http-client.ts";
import { decodeSigningKey, signatureHeader } from "../../dispatcher/delivery/signer.ts";
import { destinationPolicy } from "../../dispatcher/delivery/ssrf-guard.ts";
import { USER_AGENT } from "../../dispatcher/version.ts";
import { startPostgres } from "../env/postgres.ts";
import { startRedis } from "../env/redis.ts";
import { TEST_SECRET_BOX } from "../support/fixtures.ts";
import { heapFlags } from "../support/process-memory.ts";
import {
  type CpuTime,
  cpuTimes,
  describeCpu,
  log,
  onStop,
  pad,
  peakRss,
  percentile,
  runBenchmark,
  spawnReceiver,
  startBenchDispatcher,
  until,
} from "./bench-support.ts";

// `npm run bench`: the dispatcher's throughput and latency on this machine, through the real
// path (ingest → Redis streams → fan-out → signed POST → recorded SENT), as ratios of the box's
// HTTP limit measured in the same run: a plain undici Pool POSTing to the same receiver.
//
//   phase 0  limit: RAW_REQUESTS POSTs by a plain undici Pool (16 connections), once with 256 in
//                   flight (the issue's definition) and once with 16 (one per connection, as the
//                   DeliveryClient phase runs): the limit is the faster of the two, so that no
//                   ratio flatters the dispatcher (256 in flight measured slower: the Pool's queue)
//   phase 1  raw:   RAW_REQUESTS POSTs by the dispatcher's DeliveryClient (16 connections)
//   phase 2  max:   MAX_EVENTS events through HTTP ingest as fast as possible → deliveries/s,
//                   CPU and Redis commands per delivery, latencies
//   phase 3  xadd:  MAX_EVENTS events appended to the ingest stream (XADD), likewise
//   phase 4  half:  events paced at half the phase-2 rate for HALF_SECONDS → latencies
//
// Bounded: fixed counts, and every wait has a deadline. Sizes can be overridden by env.
//
// `BENCH_ARCHIVE=1`: what the durable log store costs on the delivery path. After phases 0 and 1,
// phases 2 and 3 run twice in the same run on fresh keyspaces: without a store, then with one (a
// real PostgreSQL, test/env/postgres.ts; the fan-out then also adds each delivery to the open set,
// settle to the pending set, and the archiver reads and marks them). The rates are taken at the last
// SENT as always; the CPU and Redis commands per delivery, with the store, once PostgreSQL has every
// delivery (the archiver's catch-up after the last SENT included). Phase 4 is left out.

const RAW_REQUESTS = Number(process.env.BENCH_RAW_REQUESTS ?? 20_000);
const MAX_EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000);
const HALF_SECONDS = Number(process.env.BENCH_HALF_SECONDS ?? 5);
/** Requests (raw) and events (dispatcher) sent before measuring, so both are measured warm. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 10_000);
const INGEST_BATCH = 250;
/** Dispatcher processes sharing the consumer groups (`BENCH_REPLICAS=2`: the multi-core setup). */
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 1);
/**
 * `BENCH_CONTAINER_MIB=512` gives the dispatcher the V8 heap limits Node takes in a container of
 * that memory limit (the chart's): without one, V8 grows its heap lazily and the peak RSS says more
 * about V8's laziness than about the dispatcher's needs.
 */
const CONTAINER_MIB = Number(process.env.BENCH_CONTAINER_MIB ?? 0);
const INGEST_CONCURRENCY = 4;
const CONNECTIONS = 16;
/** Requests the limit phase keeps in flight (queued in the Pool beyond its connections). */
const LIMIT_IN_FLIGHT = 256;
const DEADLINE_MS = 120_000;
const ARCHIVE = Boolean(process.env.BENCH_ARCHIVE);
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const INGEST_TOKEN = `bench-ingest-${randomUUID()}`;
const ADMIN_TOKEN = `bench-admin-${randomUUID()}`;

async function main(): Promise<void> {
  log(`dispatcher benchmark on ${(await import("node:os")).cpus().length} CPUs, node ${process.version}`);
  const redisServer = await startRedis();
  onStop(() => redisServer.stop());
  const redis = new Redis(redisServer.url);
  onStop(async () => redis.disconnect());

  const [receiverPort, receiverPid] = await spawnReceiver();
  const target = new URL(`http://127.0.0.1:${receiverPort}/hook`);

  // ── phase 0: the box's HTTP limit ─────────────────────────────────────────────────────────
  let limitRate = 0;
  for (const inFlight of [LIMIT_IN_FLIGHT, CONNECTIONS]) {
    const limitCpu: Record<string, string> = {};
    const rate = await plainPoolRate(
      target,
      { client: process.pid, receiver: receiverPid },
      limitCpu,
      inFlight,
    );
    limitRate = Math.max(limitRate, rate);
    log(
      `HTTP limit (plain undici Pool, ${CONNECTIONS} connections, ${inFlight} in flight): ${rate.toFixed(0)}/s; ` +
        `CPU per request: client ${limitCpu.client}, receiver ${limitCpu.receiver}`,
    );
  }

  // ── phase 1: raw client rate ──────────────────────────────────────────────────────────────
  const rawCpu: Record<string, string> = {};
  const rawRate = await rawPostRate(target, { client: process.pid, receiver: receiverPid }, rawCpu);
  log(
    `raw POST rate (DeliveryClient, ${CONNECTIONS} connections): ${rawRate.toFixed(0)}/s; CPU per request: ` +
      `client ${rawCpu.client}, receiver ${rawCpu.receiver}`,
  );

  if (ARCHIVE) return compareArchive(redis, redisServer.url, target, receiverPid, limitRate);

  // ── the dispatcher ────────────────────────────────────────────────────────────────────────
  const { keys, dispatchers, bases, scenario } = await startScenario(
    redis,
    redisServer.url,
    target,
    receiverPid,
  );
  const base = bases;

  // ── phases 2 and 3: maximum rate, through HTTP ingest and through XADD ────────────────────
  const http = await measureMax(scenario, "http");
  const xadd = await measureMax(scenario, "xadd");
  const sentSoFar = scenario.sent;
  const maxRate = http.rate;
  const maxLatencies = http.latencies;

  // ── phase 4: half the maximum rate ────────────────────────────────────────────────────────
  const halfRate = maxRate / 2;
  const halfIds = await ingestPaced(base, halfRate, HALF_SECONDS);
  await waitForSent(redis, keys.status, sentSoFar + halfIds.length);
  const halfLatencies = await ingestToSent(redis, keys, halfIds);
  if (process.env.BENCH_REDIS_STATS) {
    // where in the phase the slow ones were: p99 per fifth of the phase
    const raw = await ingestToSent(redis, keys, halfIds, false);
    const fifth = Math.ceil(raw.length / 5);
    for (let i = 0; i < 5; i++) {
      const part = raw.slice(i * fifth, (i + 1) * fifth).sort((a, b) => a - b);
      log(
        `half-rate fifth ${i + 1}: p50 ${percentile(part, 50)} ms, p99 ${percentile(part, 99)} ms, max ${part.at(-1)} ms`,
      );
    }
  }

  const peakRssMb = Math.max(...dispatchers.map((d) => peakRss(d.pid!))) / 1024;
  if (process.env.BENCH_HEAP_SNAPSHOT) {
    // with BENCH_DISPATCHER_NODE_ARGS=--heapsnapshot-signal=SIGUSR2: written to the working directory
    for (const d of dispatchers) d.kill("SIGUSR2");
    await sleep(5_000);
  }
  if (process.env.BENCH_REDIS_STATS) {
    await printRedisStats(redis);
    const metrics = await (await fetch(`${bases[0]}/metrics`)).text();
    for (const line of metrics.split("\n")) {
      if (
        /^(nodejs_heap_size_(total|used)_bytes|nodejs_external_memory_bytes|process_resident_memory_bytes) /.test(
          line,
        )
      ) {
        log(
          `dispatcher ${line.replace(/ (\d+)$/, (_, n: string) => ` ${(Number(n) / 2 ** 20).toFixed(0)} MiB`)}`,
        );
      }
    }
  }
  const ratio = (rate: number) => Number((rate / limitRate).toFixed(2));
  const results = {
    limitPostsPerSecond: Math.round(limitRate),
    rawPostsPerSecond: Math.round(rawRate),
    httpDeliveriesPerSecond: Math.round(http.rate),
    xaddDeliveriesPerSecond: Math.round(xadd.rate),
    ratios: { raw: ratio(rawRate), http: ratio(http.rate), xadd: ratio(xadd.rate) },
    cpuUsPerDelivery: { http: roundAll(http.cpuUs), xadd: roundAll(xadd.cpuUs) },
    redisCommandsPerDelivery: {
      http: Number(http.commandsPerDelivery.toFixed(1)),
      xadd: Number(xadd.commandsPerDelivery.toFixed(1)),
    },
    maxRate: { p50Ms: percentile(maxLatencies, 50), p99Ms: percentile(maxLatencies, 99) },
    halfRate: {
      eventsPerSecond: Math.round(halfRate),
      events: halfIds.length,
      p50Ms: percentile(halfLatencies, 50),
      p99Ms: percentile(halfLatencies, 99),
    },
    dispatcherPeakRssMb: Math.round(peakRssMb),
  };
  const row = (label: string, value: string, target = "") =>
    console.log(`${label.padEnd(40)}${pad(value)}  ${target}`);
  console.log("");
  row("", "result", "target");
  row("HTTP limit (plain undici Pool, best of 2)", `${results.limitPostsPerSecond}/s`, "= 1");
  row("DeliveryClient raw POSTs", `${results.rawPostsPerSecond}/s`, `${results.ratios.raw}×  ≥ 0.85×`);
  row(
    "deliveries/s, HTTP ingest → SENT",
    `${results.httpDeliveriesPerSecond}/s`,
    `${results.ratios.http}×  ≥ 0.5×`,
  );
  row(
    "deliveries/s, XADD → SENT",
    `${results.xaddDeliveriesPerSecond}/s`,
    `${results.ratios.xadd}×  ≥ 0.45×`,
  );
  row(
    "Redis CPU per delivery (HTTP / XADD)",
    `${results.cpuUsPerDelivery.http.redis}/${results.cpuUsPerDelivery.xadd.redis} µs`,
    "≤ 30 µs",
  );
  row(
    "Redis commands per delivery (HTTP/XADD)",
    `${results.redisCommandsPerDelivery.http}/${results.redisCommandsPerDelivery.xadd}`,
  );
  row(
    "ingest→SENT at max rate  p50/p99",
    `${results.maxRate.p50Ms}/${results.maxRate.p99Ms} ms`,
    "(queueing)",
  );
  row(
    `ingest→SENT at ${results.halfRate.eventsPerSecond}/s  p50/p99`,
    `${results.halfRate.p50Ms}/${results.halfRate.p99Ms} ms`,
    "p99 < 50 ms",
  );
  row("dispatcher peak RSS", `${results.dispatcherPeakRssMb} MiB`, "< 200 MiB");
  console.log("");
  console.log(JSON.stringify(results));
}

/** The dispatcher replicas of one keyspace and what the measured phases share. */
interface Scenario {
  redis: Redis;
  keys: Keyspace;
  bases: string[];
  pids: Record<string, number | number[]>;
  /** deliveries SENT so far in this keyspace */
  sent: number;
  /** with a store: its PostgreSQL rows, counted until every delivery of the phase is archived */
  archived?: () => Promise<number>;
  /** printed before each line of this scenario ("" by default) */
  label: string;
}

/**
 * REPLICAS dispatchers on a fresh keyspace routing to `target` (with `env`: e.g. a store), warmed
 * up with WARMUP deliveries.
 */
async function startScenario(
  redis: Redis,
  redisUrl: string,
  target: URL,
  receiverPid: number,
  env: Record<string, string> = {},
  label = "",
): Promise<{ keys: Keyspace; dispatchers: ChildProcess[]; bases: string[]; scenario: Scenario }> {
  const keyTag = `bench-${randomUUID().slice(0, 8)}`;
  const keys = keyspace(keyTag);
  await writeNamespaceRouting(
    redis,
    {
      namespace: "bench",
      enabled: true,
      signingSecrets: [SECRET],
      allowPlainHttp: true,
      webhooks: [{ name: "hook", event: "job.created", url: target.href }],
    },
    keys,
    TEST_SECRET_BOX,
  );
  xaddTarget = { redis, stream: keys.events };
  const nodeArgs = [
    ...(CONTAINER_MIB > 0 ? heapFlags(CONTAINER_MIB) : []),
    ...(process.env.BENCH_DISPATCHER_NODE_ARGS ?? "").split(" ").filter(Boolean),
  ];
  if (nodeArgs.length > 0) log(`dispatcher node flags: ${nodeArgs.join(" ")}`);
  const dispatchers: ChildProcess[] = [];
  const bases: string[] = [];
  for (let replica = 0; replica < REPLICAS; replica++) {
    const started = await startBenchDispatcher({
      redisUrl,
      keyTag,
      ingestToken: INGEST_TOKEN,
      adminToken: ADMIN_TOKEN,
      nodeArgs,
      env: {
        DISPATCHER_CONSUMER_NAME: `bench-${replica}`,
        DISPATCHER_ENDPOINT_CONCURRENCY: String(CONNECTIONS),
        // waitForSent counts status entries: the stream must hold every one of the run
        DISPATCHER_STATUS_STREAM_MAXLEN: String(10 * (WARMUP + 3 * MAX_EVENTS)),
        ...env,
      },
    });
    dispatchers.push(started.process);
    bases.push(started.base);
  }
  log(`${label}${REPLICAS} dispatcher replica(s); producers spread their batches over them`);

  // warm-up, as for the raw client
  await ingestAll(
    bases,
    Array.from({ length: WARMUP }, (_, i) => `warmup-${i}`),
  );
  await waitForSent(redis, keys.status, WARMUP);
  const pids = {
    dispatcher: dispatchers.map((d) => d.pid!),
    receiver: receiverPid,
    redis: Number(/process_id:(\d+)/.exec(await redis.info("server"))?.[1]),
    bench: process.pid,
  };
  return { keys, dispatchers, bases, scenario: { redis, keys, bases, pids, sent: WARMUP, label } };
}

/** Phases 2 and 3: MAX_EVENTS events through `path` as fast as possible. */
async function measureMax(scenario: Scenario, path: IngestPath): Promise<MaxRun> {
  const { redis, keys, bases, pids, label } = scenario;
  const ids = Array.from({ length: MAX_EVENTS }, (_, i) => `max-${path}-${i}`);
  const cpuBefore = cpuTimes(pids);
  const commandsBefore = await commandCalls(redis);
  const start = Date.now();
  await ingestAll(bases, ids, path);
  const ingestDone = Date.now();
  scenario.sent += MAX_EVENTS;
  await waitForSent(redis, keys.status, scenario.sent);
  const elapsed = (Date.now() - start) / 1000;
  let archivedAfter: number | undefined;
  if (scenario.archived) {
    // polled in PostgreSQL, not Redis: the commands counted are the dispatcher's alone
    const archived = scenario.archived;
    await until(async () => (await archived()) >= scenario.sent, DEADLINE_MS, "all archived", 100);
    archivedAfter = (Date.now() - start) / 1000 - elapsed;
  }
  const cpuAfter = cpuTimes(pids);
  const commands = diffCalls(commandsBefore, await commandCalls(redis));
  const cpuUs = Object.fromEntries(
    Object.entries(cpuAfter).map(([name, t]) => [
      name,
      ((t.total - cpuBefore[name]!.total) * 1e6) / MAX_EVENTS,
    ]),
  );
  const rate = MAX_EVENTS / elapsed;
  const latencies = await ingestToSent(redis, keys, ids);
  const totalCommands = [...commands.values()].reduce((a, b) => a + b, 0);
  log(
    `${label}${path}: ${MAX_EVENTS} deliveries in ${elapsed.toFixed(2)} s = ${rate.toFixed(0)}/s ` +
      `(ingest took ${((ingestDone - start) / 1000).toFixed(2)} s); machine load ${loadavg()[0]!.toFixed(1)}` +
      (archivedAfter === undefined
        ? ""
        : `; all in PostgreSQL ${archivedAfter.toFixed(2)} s after the last SENT`),
  );
  log(
    `${label}${path}: CPU per delivery ${Object.keys(cpuUs)
      .map((name) => `${name} ${describeCpu(cpuBefore[name]!, cpuAfter[name]!, MAX_EVENTS)}`)
      .join(", ")}`,
  );
  log(
    `${label}${path}: Redis commands per delivery ${(totalCommands / MAX_EVENTS).toFixed(1)} (scripts' own included): ` +
      [...commands.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([name, calls]) => `${name} ${(calls / MAX_EVENTS).toFixed(2)}`)
        .join(", "),
  );
  return { rate, cpuUs, commandsPerDelivery: totalCommands / MAX_EVENTS, latencies };
}

/**
 * `BENCH_ARCHIVE=1`: phases 2 and 3 without a store, then with one, in this run; the ratios with /
 * without, and a check that PostgreSQL has every delivery of the run with the store.
 */
async function compareArchive(
  redis: Redis,
  redisUrl: string,
  target: URL,
  receiverPid: number,
  limitRate: number,
): Promise<void> {
  const postgresServer = await startPostgres();
  onStop(() => postgresServer.destroy());
  const store = new ArchiveStore({ url: postgresServer.url, retentionDays: 30, max: 2 });
  onStop(() => store.close());
  const runs: Array<{ http: MaxRun; xadd: MaxRun }> = [];
  let expected = 0;
  for (const withStore of [false, true]) {
    const label = withStore ? "with store: " : "without store: ";
    const env: Record<string, string> = withStore ? { DISPATCHER_POSTGRES_URL: postgresServer.url } : {};
    const { dispatchers, scenario } = await startScenario(redis, redisUrl, target, receiverPid, env, label);
    if (withStore) {
      scenario.archived = () => store.count();
      await until(async () => (await store.count()) >= WARMUP, DEADLINE_MS, "warm-up archived", 100);
    }
    runs.push({ http: await measureMax(scenario, "http"), xadd: await measureMax(scenario, "xadd") });
    if (withStore) expected = scenario.sent;
    // one keyspace's dispatchers at a time: the next run has the machine to itself
    await Promise.all(dispatchers.map(stopProcess));
  }
  const archived = await store.count();
  if (archived !== expected)
    throw new Error(`PostgreSQL has ${archived} deliveries of the ${expected} delivered with the store`);

  const [without, withStore] = runs as [{ http: MaxRun; xadd: MaxRun }, { http: MaxRun; xadd: MaxRun }];
  const ratio = (a: number, b: number) => Number((a / b).toFixed(2));
  const results = {
    limitPostsPerSecond: Math.round(limitRate),
    withoutStore: summary(without, limitRate),
    withStore: summary(withStore, limitRate),
    withOverWithout: {
      http: ratio(withStore.http.rate, without.http.rate),
      xadd: ratio(withStore.xadd.rate, without.xadd.rate),
    },
    archivedRows: archived,
  };
  const row = (label: string, a: string, b: string, c = "") =>
    console.log(`${label.padEnd(44)}${a.padEnd(18)}${b.padEnd(18)}${c}`);
  const both = (run: { http: MaxRun; xadd: MaxRun }, value: (r: MaxRun) => string) =>
    `${value(run.http)} / ${value(run.xadd)}`;
  console.log("");
  row("HTTP limit (plain undici Pool, best of 2)", `${results.limitPostsPerSecond}/s`, "");
  row("", "without store", "with store", "with / without");
  for (const path of ["http", "xadd"] as const)
    row(
      `deliveries/s, ${path === "http" ? "HTTP ingest" : "XADD"} → SENT`,
      `${Math.round(without[path].rate)}/s (${ratio(without[path].rate, limitRate)}×)`,
      `${Math.round(withStore[path].rate)}/s (${ratio(withStore[path].rate, limitRate)}×)`,
      `${results.withOverWithout[path]}`,
    );
  const redisUs = (r: MaxRun) => `${Math.round(r.cpuUs.redis ?? 0)}`;
  const dispatcherUs = (r: MaxRun) => `${Math.round(r.cpuUs.dispatcher ?? 0)}`;
  const commands = (r: MaxRun) => r.commandsPerDelivery.toFixed(1);
  row(
    "Redis CPU per delivery (HTTP / XADD)",
    `${both(without, redisUs)} µs`,
    `${both(withStore, redisUs)} µs`,
  );
  row("Redis commands per delivery (HTTP / XADD)", both(without, commands), both(withStore, commands));
  row(
    "dispatcher CPU per delivery (HTTP / XADD)",
    `${both(without, dispatcherUs)} µs`,
    `${both(withStore, dispatcherUs)} µs`,
  );
  row("archived to PostgreSQL", "", `${archived} rows`, `all ${expected} delivered`);
  console.log("");
  console.log(JSON.stringify(results));
}

function summary(run: { http: MaxRun; xadd: MaxRun }, limitRate: number) {
  return Object.fromEntries(
    (["http", "xadd"] as const).map((path) => [
      path,
      {
        deliveriesPerSecond: Math.round(run[path].rate),
        ratioToLimit: Number((run[path].rate / limitRate).toFixed(2)),
        redisUsPerDelivery: Math.round(run[path].cpuUs.redis ?? 0),
        redisCommandsPerDelivery: Number(run[path].commandsPerDelivery.toFixed(1)),
        dispatcherUsPerDelivery: Math.round(run[path].cpuUs.dispatcher ?? 0),
      },
    ]),
  );
}

/** SIGTERM, and the process gone (a dispatcher finishes its in-flight attempts first). */
function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

type IngestPath = "http" | "xadd";

interface MaxRun {
  rate: number;
  /** CPU µs per delivery, per process */
  cpuUs: Record<string, number>;
  commandsPerDelivery: number;
  latencies: number[];
}

function roundAll(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Math.round(v)]));
}

/** Calls per command since Redis started (`INFO commandstats`; commands run by scripts included). */
async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info("commandstats");
  return new Map(
    [...info.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)].map(([, name, calls]) => [name!, Number(calls)]),
  );
}

function diffCalls(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const diff = new Map<string, number>();
  for (const [name, calls] of after) {
    const delta = calls - (before.get(name) ?? 0);
    // the bench's own polling (XLEN, INFO, HMGET of latencies) is not the dispatcher's work
    if (delta > 0 && !["xlen", "info"].includes(name)) diff.set(name, delta);
  }
  return diff;
}

/**
 * The box's HTTP limit: a plain undici Pool, nothing else, POSTing the same body to the same
 * receiver with `inFlight` requests outstanding.
 */
async function plainPoolRate(
  target: URL,
  pids: Record<string, number>,
  cpuPerRequest: Record<string, string>,
  inFlight: number,
): Promise<number> {
  const pool = new Pool(target.origin, { connections: CONNECTIONS });
  const body = notificationPayload({
    eventId: "limit-0",
    type: "job.created",
    occurredAt: new Date().toISOString(),
    namespace: "bench",
    webhook: "hook",
    dataJson: '{"id":"limit-0"}',
  });
  let next = 0;
  let end = 0;
  const worker = async () => {
    while (next < end) {
      next++;
      const response = await pool.request({
        origin: target.origin,
        path: target.pathname,
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await response.body.dump();
      if (response.statusCode !== 200) throw new Error(`receiver answered ${response.statusCode}`);
    }
  };
  end = WARMUP;
  await Promise.all(Array.from({ length: inFlight }, worker));
  end = WARMUP + RAW_REQUESTS;
  const cpuBefore = cpuTimes(pids);
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (performance.now() - start) / 1000;
  recordCpu(cpuBefore, cpuTimes(pids), cpuPerRequest);
  await pool.close();
  return RAW_REQUESTS / seconds;
}

async function rawPostRate(
  target: URL,
  pids: Record<string, number>,
  cpuPerRequest: Record<string, string>,
): Promise<number> {
  const client = new DeliveryClient({
    connectionsPerOrigin: CONNECTIONS,
    policy: destinationPolicy(["127.0.0.1"]),
  });
  const key = decodeSigningKey(SECRET);
  const body = notificationPayload({
    eventId: "raw-0",
    type: "job.created",
    occurredAt: new Date().toISOString(),
    namespace: "bench",
    webhook: "hook",
    dataJson: '{"id":"raw-0"}',
  });
  let next = 0;
  let end = 0;
  let failures = 0;
  const worker = async () => {
    while (next < end) {
      const n = next++;
      const timestamp = Math.floor(Date.now() / 1000);
      const id = `raw-${n}`;
      const result = await client.send({
        url: target,
        body,
        timeoutMs: 15_000,
        headers: {
          "content-type": "application/json",
          "user-agent": USER_AGENT,
          "webhook-id": id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": signatureHeader([key], id, timestamp, body),
        },
      });
      if (!result.ok) failures++;
    }
  };
  // warm up (connections, JIT: the first thousands of requests cost twice as much), then measure
  end = WARMUP;
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  end = WARMUP + RAW_REQUESTS;
  const cpuBefore = cpuTimes(pids);
  const start = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const seconds = (performance.now() - start) / 1000;
  recordCpu(cpuBefore, cpuTimes(pids), cpuPerRequest);
  await client.close();
  if (failures > 0) throw new Error(`${failures} raw POSTs failed`);
  return RAW_REQUESTS / seconds;
}

/** CPU per request of each process between two readings, described (describeCpu). */
function recordCpu(
  before: Record<string, CpuTime>,
  after: Record<string, CpuTime>,
  into: Record<string, string>,
) {
  for (const name of Object.keys(before)) into[name] = describeCpu(before[name]!, after[name]!, RAW_REQUESTS);
}

function eventsFor(ids: string[]) {
  return ids.map((id) => ({
    type: "job.created",
    namespace: "bench",
    id,
    data: { jobId: id, status: "created" },
  }));
}

/** Round-robin over the replicas, batch by batch (producers behind a load-balancing Service). */
let nextBase = 0;
async function postBatch(bases: readonly string[], ids: string[], path: IngestPath = "http"): Promise<void> {
  if (path === "xadd") return xaddBatch(ids);
  const base = bases[nextBase++ % bases.length];
  const response = await fetch(`${base}/v1/events/batch`, {
    method: "POST",
    headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ events: eventsFor(ids) }),
  });
  if (response.status !== 202)
    throw new Error(`ingest answered ${response.status}: ${await response.text()}`);
}

/** Producers appending to the ingest stream directly (the documented XADD path). */
let xaddTarget: { redis: Redis; stream: string } | undefined;
async function xaddBatch(ids: string[]): Promise<void> {
  const pipeline = xaddTarget!.redis.pipeline();
  for (const event of eventsFor(ids)) {
    pipeline.xadd(
      xaddTarget!.stream,
      "*",
      "type",
      event.type,
      "namespace",
      event.namespace,
      "id",
      event.id,
      "data",
      JSON.stringify(event.data),
    );
  }
  await pipeline.exec();
}

async function ingestAll(base: readonly string[], ids: string[], path: IngestPath = "http"): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const batch = ids.slice(next, next + INGEST_BATCH);
      next += INGEST_BATCH;
      await postBatch(base, batch, path);
    }
  };
  await Promise.all(Array.from({ length: INGEST_CONCURRENCY }, worker));
}

/** Ingests at `rate` events/s for `seconds`, in small batches every 10 ms. */
async function ingestPaced(base: readonly string[], rate: number, seconds: number): Promise<string[]> {
  const ids: string[] = [];
  const total = Math.round(rate * seconds);
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  while (ids.length < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    if (due > ids.length) {
      const batch = Array.from({ length: due - ids.length }, (_, i) => `half-${ids.length + i}`);
      ids.push(...batch);
      inFlight.push(postBatch(base, batch));
    }
    await sleep(10);
  }
  await Promise.all(inFlight);
  return ids;
}

/**
 * Waits until `count` deliveries are SENT: each delivery of the run writes exactly two status
 * entries (QUEUED at creation, SENT) as no receiver call fails, and XLEN costs O(1) — unlike
 * scraping /metrics, which would load the dispatcher being measured.
 */
async function waitForSent(redis: Redis, statusStream: string, count: number): Promise<void> {
  await until(
    async () => (await redis.xlen(statusStream)) >= 2 * count,
    DEADLINE_MS,
    `${count} deliveries SENT`,
    10,
  );
}

/** ingest → SENT recorded, per delivery, from the records (Redis and dispatcher share a clock). */
async function ingestToSent(
  redis: Redis,
  keys: ReturnType<typeof keyspace>,
  eventIds: string[],
  sorted = true,
): Promise<number[]> {
  const { deliveryId } = await import("../../contract/delivery-id.ts");
  const { readDeliveries } = await import("../../contract/deliveries.ts");
  const { resolveEventPart } = await import("../../contract/records.ts");
  const latencies: number[] = [];
  for (let i = 0; i < eventIds.length; i += 1_000) {
    const ids = eventIds.slice(i, i + 1_000).map((eventId) => deliveryId("bench", eventId, "hook"));
    for (const read of await readDeliveries(redis, ids, keys)) {
      if (!read) throw new Error("a delivery record is missing");
      const ingestedAt = resolveEventPart(read.view, read.event)?.ingestedAt ?? Number.NaN;
      latencies.push(read.view.header.updatedAt - ingestedAt);
    }
  }
  return sorted ? latencies.sort((a, b) => a - b) : latencies;
}

/** Where Redis spent its time (for tuning the scripts): `BENCH_REDIS_STATS=1`. */
async function printRedisStats(redis: Redis): Promise<void> {
  const info = await redis.info("commandstats");
  const rows = [...info.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/g)]
    .map(([, name, calls, usec, perCall]) => ({ name, calls: Number(calls), usec: Number(usec), perCall }))
    .sort((a, b) => b.usec - a.usec)
    .slice(0, 12);
  for (const row of rows) {
    log(
      `redis ${row.name!.padEnd(14)} calls ${String(row.calls).padStart(8)}  ${(row.usec / 1e6).toFixed(2)} s  ${row.perCall} µs/call`,
    );
  }
  const cpu = (await redis.info("cpu")).match(/used_cpu_user:([\d.]+)/)?.[1];
  log(`redis used_cpu_user ${cpu} s`);
}

// with the store, phases 2 and 3 run twice and wait for the archiver
runBenchmark(main, DEADLINE_MS * (ARCHIVE ? 4 : 2));
