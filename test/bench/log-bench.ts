import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { readDelivery } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import { CONSUMER_GROUPS, keyspace } from "../../contract/keys.ts";
import { pendingCount, trimAcknowledged } from "../../contract/streams/stream-maintenance.ts";
import { freePort } from "../env/ports.ts";
import { startRedis } from "../env/redis.ts";
import {
  ingestLogEvents,
  LOG_NAMESPACE,
  log,
  onStop,
  percentile,
  runBenchmark,
  spawnReceiver,
  startBenchDispatcher,
  until,
  writeLogRouting,
} from "./bench-support.ts";

// `npm run bench:log`: what the event log costs at volume. Fills Redis with N deliveries through
// the real path (HTTP ingest → dispatcher → receiver; 1 in 10 to an endpoint that refuses, so
// FAILED ones exist), then prints Redis memory per delivery by key family (MEMORY USAGE) and the
// latencies of the log API's usual queries. N = BENCH_LOG_DELIVERIES (default 100,000).
// The per-delivery total is taken once the work stream's acknowledged entries are trimmed, as
// every replica's maintenance does each DISPATCHER_MAINTENANCE_INTERVAL_MS (10 s): they are
// transient, not retained with the delivery. The status stream is kept whole (its cap is raised
// to 3 N), so its entries count in full.

const DELIVERIES = Number(process.env.BENCH_LOG_DELIVERIES ?? 100_000);
const SAMPLE = 1_000;
const QUERY_RUNS = 15;
const DEADLINE_MS = 30 * 60_000;
const NAMESPACE = LOG_NAMESPACE;
const INGEST_TOKEN = `bench-ingest-${randomUUID()}`;
const ADMIN_TOKEN = `bench-admin-${randomUUID()}`;

async function main(): Promise<void> {
  const redisServer = await startRedis();
  onStop(() => redisServer.stop());
  const redis = new Redis(redisServer.url);
  onStop(async () => redis.disconnect());
  // an experiment: Redis keeps a hash compact (listpack) only while every value fits this
  const listpackValue = process.env.BENCH_HASH_MAX_LISTPACK_VALUE;
  if (listpackValue) await redis.config("SET", "hash-max-listpack-value", listpackValue);
  const [receiverPort] = await spawnReceiver();
  const refusing = await freePort(); // nothing listens: connection refused at once

  const keys = keyspace(`log-${randomUUID().slice(0, 8)}`);
  await writeLogRouting(redis, keys, receiverPort, refusing);
  const { base } = await startBenchDispatcher({
    redisUrl: redisServer.url,
    keyTag: keys.prefix.slice(1, -2),
    ingestToken: INGEST_TOKEN,
    adminToken: ADMIN_TOKEN,
    env: { DISPATCHER_STATUS_STREAM_MAXLEN: String(3 * DELIVERIES) },
  });

  const memoryBefore = await usedMemory(redis);
  const fillStart = Date.now();
  const events = await ingestLogEvents(base, INGEST_TOKEN, DELIVERIES);
  // every delivery writes two status entries: QUEUED, then SENT or FAILED
  await until(
    async () => (await redis.xlen(keys.status)) >= 2 * DELIVERIES,
    DEADLINE_MS,
    "all finished",
    200,
  );
  log(`filled ${DELIVERIES} deliveries in ${((Date.now() - fillStart) / 1000).toFixed(0)} s`);
  const memoryFilled = await usedMemory(redis);
  const workStreamBytes = ((await memoryUsage(redis, keys.deliveries)) ?? 0) / DELIVERIES;
  // what the maintenance loop does within 10 s anyway, done now so that every run measures the same;
  // once the last stale or handed-back work entries are acknowledged too (they hold the trim back)
  await until(
    async () => (await pendingCount(redis, keys.deliveries, CONSUMER_GROUPS.delivery)) === 0,
    DEADLINE_MS,
    "work acknowledged",
    200,
  );
  // an approximate XTRIM removes at most 100 stream nodes (10,000 entries) per call
  for (let left = Infinity; (await redis.xlen(keys.deliveries)) < left; ) {
    left = await redis.xlen(keys.deliveries);
    await trimAcknowledged(redis, keys.deliveries);
  }
  await trimAcknowledged(redis, keys.events);
  const memoryAfter = await usedMemory(redis);

  // ── memory per delivery, by key family ─────────────────────────────────────────────────────
  const ids = events.map((event) => ({
    event: event.id,
    delivery: deliveryId(NAMESPACE, event.id, event.type === "job.created" ? "orders" : "payments"),
  }));
  // a stride coprime with LOG_FAILING_SHARE: every tenth delivery fails, and an even spread
  // (every N/1000th) would pick only FAILED ones whenever N/1000 is a multiple of 10
  const sample = Array.from(
    { length: Math.min(SAMPLE, DELIVERIES) },
    (_, i) => ids[(i * 7919) % DELIVERIES]!,
  );
  const families: Array<{ family: string; bytesPerDelivery: number }> = [
    {
      family: "delivery record",
      bytesPerDelivery: await meanUsage(
        redis,
        sample.map((s) => keys.delivery(s.delivery)),
      ),
    },
    {
      family: "event record",
      bytesPerDelivery: await meanUsage(
        redis,
        sample.map((s) => keys.event(NAMESPACE, s.event)),
      ),
    },
    {
      family: "idempotency marker (format 1)",
      bytesPerDelivery: await meanUsage(
        redis,
        sample.map((s) => keys.seen(NAMESPACE, s.event)),
      ),
    },
  ];
  for (const [family, key] of [
    ["status stream", keys.status],
    ["work stream, once trimmed", keys.deliveries],
    ["index: all", keys.logAll],
    ["index: namespace", keys.logNamespace(NAMESPACE)],
    ["index: webhooks", keys.logWebhook(NAMESPACE, "orders")],
    ["index: webhooks (2)", keys.logWebhook(NAMESPACE, "payments")],
    ["index: FAILED", keys.logFailed],
    ["index registry", keys.logIndexes],
    ["format 1 indexes: all", keys.legacyLog.all],
    ["format 1 indexes: namespace", keys.legacyLog.namespace(NAMESPACE)],
    ["format 1 indexes: webhooks", keys.legacyLog.webhook(NAMESPACE, "orders")],
  ] as const) {
    families.push({ family, bytesPerDelivery: ((await memoryUsage(redis, key)) ?? 0) / DELIVERIES });
  }
  const payloadBytes = Buffer.byteLength(
    (await readDelivery(redis, sample[1]!.delivery, keys))?.payload ?? "",
  );

  // ── log API latencies ─────────────────────────────────────────────────────────────────────
  const queries = [
    ["first page", "/v1/deliveries?limit=50"],
    ["FAILED, first page", "/v1/deliveries?phase=FAILED&limit=50"],
    ["one webhook, SENT", "/v1/deliveries?namespace=bench&webhook=orders&phase=SENT&limit=50"],
    ["event type filter", "/v1/deliveries?namespace=bench&eventType=payment.received&limit=50"],
  ] as const;
  const latencies: Array<{ query: string; p50: number; p99: number }> = [];
  for (const [query, path] of queries) {
    const times: number[] = [];
    for (let i = 0; i < QUERY_RUNS; i++) times.push(await timedGet(`${base}${path}`));
    times.sort((a, b) => a - b);
    latencies.push({ query, p50: percentile(times, 50), p99: percentile(times, 99) });
  }
  const pagingStart = performance.now();
  let pages = 0;
  let cursor: string | undefined;
  do {
    const response = await fetch(
      `${base}/v1/deliveries?phase=FAILED&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
    );
    cursor = ((await response.json()) as { nextCursor?: string }).nextCursor;
    pages++;
  } while (cursor !== undefined);
  const pagingMs = performance.now() - pagingStart;

  const total = (memoryAfter - memoryBefore) / DELIVERIES;
  const totalFilled = (memoryFilled - memoryBefore) / DELIVERIES;
  const counted = families.reduce((sum, f) => sum + f.bytesPerDelivery, 0);
  console.log("");
  const encoding = await redis.object("ENCODING", keys.delivery(sample[1]!.delivery));
  console.log(
    `Redis memory per delivery, ${DELIVERIES} deliveries (payload ${payloadBytes} B; records: ${encoding})`,
  );
  for (const { family, bytesPerDelivery } of families) {
    console.log(`  ${family.padEnd(38)}${bytesPerDelivery.toFixed(0).padStart(6)} B`);
  }
  console.log(`  ${"sum of the families".padEnd(38)}${counted.toFixed(0).padStart(6)} B`);
  console.log(
    `  ${"used_memory growth, as filled".padEnd(38)}${totalFilled.toFixed(0).padStart(6)} B (work stream untrimmed: ${workStreamBytes.toFixed(0)} B)`,
  );
  console.log(`  ${"used_memory growth".padEnd(38)}${total.toFixed(0).padStart(6)} B`);
  console.log(`  ${"beyond the payload".padEnd(38)}${(total - payloadBytes).toFixed(0).padStart(6)} B`);
  console.log("");
  console.log(`log API latencies (${QUERY_RUNS} runs each)          p50       p99`);
  for (const { query, p50, p99 } of latencies) {
    console.log(
      `  ${query.padEnd(38)}${`${p50.toFixed(1)} ms`.padStart(8)}${`${p99.toFixed(1)} ms`.padStart(10)}`,
    );
  }
  console.log(`  paging all FAILED: ${pages} pages of 100 in ${pagingMs.toFixed(0)} ms`);
  console.log("");
  console.log(
    JSON.stringify({
      deliveries: DELIVERIES,
      payloadBytes,
      bytesPerDelivery: Math.round(total),
      bytesPerDeliveryAsFilled: Math.round(totalFilled),
      workStreamUntrimmed: Math.round(workStreamBytes),
      beyondPayload: Math.round(total - payloadBytes),
      families: Object.fromEntries(families.map((f) => [f.family, Math.round(f.bytesPerDelivery)])),
      latenciesMs: Object.fromEntries(latencies.map((l) => [l.query, l.p50])),
      pagingFailedMs: Math.round(pagingMs),
    }),
  );

  async function timedGet(url: string): Promise<number> {
    const start = performance.now();
    const response = await fetch(url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    return performance.now() - start;
  }
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
}

async function memoryUsage(redis: Redis, key: string): Promise<number | null> {
  // SAMPLES 0: every element, not an estimate from five
  return (await redis.call("MEMORY", "USAGE", key, "SAMPLES", "0")) as number | null;
}

async function meanUsage(redis: Redis, keys: readonly string[]): Promise<number> {
  let sum = 0;
  for (const key of keys) sum += (await memoryUsage(redis, key)) ?? 0;
  return sum / keys.length;
}

runBenchmark(main, DEADLINE_MS);
