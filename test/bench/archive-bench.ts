import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { keyspace } from "../../contract/keys.ts";
import type { DeliveryRecord } from "../../contract/records.ts";
import { type ArchivedDelivery, ArchiveStore, TABLE } from "../../dispatcher/archive/archive-store.ts";
import { startPostgres } from "../env/postgres.ts";
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

// `npm run bench:archive`: the event log with the durable log store (PostgreSQL) at volume.
// 1. The real path for BENCH_ARCHIVE_LIVE deliveries (default 20,000): HTTP ingest → dispatcher →
//    receiver → archiver → Postgres, one in ten FAILED; timed until every one is archived.
// 2. The rest of BENCH_LOG_DELIVERIES (default 1,000,000) written straight into the table with the
//    store's own batch writer (ArchiveStore.write: the archiver's multi-row upsert), spread over the
//    last 30 days and 20 namespaces: filling a million through HTTP takes too long on 2 shared cores.
// 3. Once the hot window (5 s here) has passed: what Redis still holds, and the log API's latencies
//    (first page, filters, page 2), served by Postgres merged with Redis.

const TOTAL = Number(process.env.BENCH_LOG_DELIVERIES ?? 1_000_000);
const LIVE = Math.min(TOTAL, Number(process.env.BENCH_ARCHIVE_LIVE ?? 20_000));
const FILL_BATCH = 2_000;
const QUERY_RUNS = 21;
const DEADLINE_MS = 60 * 60_000;
const NAMESPACE = LOG_NAMESPACE;
const NAMESPACES = 20;
const DAY = 86_400_000;
const INGEST_TOKEN = `bench-ingest-${randomUUID()}`;
const ADMIN_TOKEN = `bench-admin-${randomUUID()}`;

async function main(): Promise<void> {
  const redisServer = await startRedis();
  onStop(() => redisServer.stop());
  const postgresServer = await startPostgres();
  onStop(() => postgresServer.destroy());
  const redis = new Redis(redisServer.url);
  onStop(async () => redis.disconnect());
  const [receiverPort] = await spawnReceiver();
  const keys = keyspace(`archive-${randomUUID().slice(0, 8)}`);
  // nothing listens on port 9 of loopback: refused at once, FAILED
  await writeLogRouting(redis, keys, receiverPort, 9);
  const memoryBefore = await usedMemory(redis);
  const { base } = await startBenchDispatcher({
    redisUrl: redisServer.url,
    keyTag: keys.prefix.slice(1, -2),
    ingestToken: INGEST_TOKEN,
    adminToken: ADMIN_TOKEN,
    env: {
      DISPATCHER_POSTGRES_URL: postgresServer.url,
      DISPATCHER_ARCHIVE_HOT_WINDOW_MS: "5000",
      DISPATCHER_ARCHIVE_INTERVAL_MS: "200",
      DISPATCHER_MAINTENANCE_INTERVAL_MS: "1000",
      // one in ten deliveries fails on purpose: not a warning per delivery here
      DISPATCHER_LOG_LEVEL: "error",
    },
  });
  const store = new ArchiveStore({ url: postgresServer.url, retentionDays: 90, max: 4 });
  onStop(() => store.close());

  // ── 1. the real path ──────────────────────────────────────────────────────────────────────
  const liveStart = Date.now();
  await ingestLogEvents(base, INGEST_TOKEN, LIVE);
  const ingestedMs = Date.now() - liveStart;
  await until(async () => (await store.count()) >= LIVE, DEADLINE_MS, "all archived", 500);
  const archivedMs = Date.now() - liveStart;
  log(
    `real path: ${LIVE} deliveries ingested in ${(ingestedMs / 1000).toFixed(1)} s, all archived after ${(archivedMs / 1000).toFixed(1)} s`,
  );
  const sample = await store.get(await anyId(store));
  if (!sample) throw new Error("nothing archived");

  // ── 2. the rest, through the store's batch writer ─────────────────────────────────────────
  const fillStart = Date.now();
  const now = Date.now();
  const rest = TOTAL - LIVE;
  for (let at = 0; at < rest; at += FILL_BATCH) {
    const batch: ArchivedDelivery[] = [];
    for (let i = at; i < Math.min(rest, at + FILL_BATCH); i++)
      batch.push(synthetic(sample.record, i, now, rest));
    await store.write(batch, now);
    if (at % 100_000 === 0 && at > 0)
      log(`  ${at} written (${((Date.now() - fillStart) / 1000).toFixed(0)} s)`);
  }
  const fillMs = Date.now() - fillStart;
  await store.sql.unsafe(`analyze ${TABLE}`);
  log(
    `batch writer: ${rest} deliveries in ${(fillMs / 1000).toFixed(0)} s (${Math.round(rest / (fillMs / 1000))}/s)`,
  );

  // ── 3. Redis after the hot window; the log API ────────────────────────────────────────────
  await until(
    async () => (await countKeys(redis, `${keys.prefix}delivery:*`)) === 0,
    120_000,
    "hot window passed: no delivery record left in Redis",
    1_000,
  );
  const memoryAfter = await usedMemory(redis);
  const indexEntries = await redis.xlen(keys.logAll);
  const queries = [
    ["first page, all namespaces", "/v1/deliveries?limit=50"],
    ["first page, one namespace", `/v1/deliveries?namespace=${NAMESPACE}&limit=50`],
    ["first page, another namespace", "/v1/deliveries?namespace=bench-7&limit=50"],
    ["one webhook", "/v1/deliveries?namespace=bench-7&webhook=orders&limit=50"],
    ["FAILED", "/v1/deliveries?namespace=bench-7&phase=FAILED&limit=50"],
    ["event type", "/v1/deliveries?eventType=payment.received&limit=50"],
  ] as const;
  const latencies: Array<{ query: string; p50: number; p95: number; max: number }> = [];
  for (const [query, path] of queries) {
    const times: number[] = [];
    for (let i = 0; i < QUERY_RUNS; i++) times.push((await timedGet(`${base}${path}`)).ms);
    times.sort((a, b) => a - b);
    latencies.push({ query, p50: percentile(times, 50), p95: percentile(times, 95), max: times.at(-1)! });
  }
  const first = await timedGet(`${base}/v1/deliveries?namespace=bench-7&limit=50`);
  const second = await timedGet(
    `${base}/v1/deliveries?namespace=bench-7&limit=50&cursor=${encodeURIComponent(first.body.nextCursor ?? "")}`,
  );
  const detail = await timedGet(`${base}/v1/deliveries/${first.body.items[0]!.id}`);
  const [sizeRow] = await store.sql<{ size: string }[]>`
    select pg_size_pretty(sum(pg_total_relation_size(inhrelid))) as size from pg_inherits
    where inhparent = ${TABLE}::regclass`;
  const size = sizeRow?.size ?? "?";

  console.log("");
  console.log(`${TOTAL} deliveries retained in Postgres (${await store.count()} rows, ${size} with indexes)`);
  console.log(
    `Redis after the hot window: ${await countKeys(redis, `${keys.prefix}delivery:*`)} delivery records, ${indexEntries} index entries, used_memory ${((memoryAfter - memoryBefore) / 1024 / 1024).toFixed(1)} MiB above the empty keyspace`,
  );
  console.log(`log API latencies (${QUERY_RUNS} runs each)         p50      p95      max`);
  for (const { query, p50, p95, max } of latencies)
    console.log(
      `  ${query.padEnd(34)}${`${p50.toFixed(1)} ms`.padStart(9)}${`${p95.toFixed(1)} ms`.padStart(9)}${`${max.toFixed(1)} ms`.padStart(9)}`,
    );
  console.log(`  ${"page 2, another namespace".padEnd(34)}${`${second.ms.toFixed(1)} ms`.padStart(9)}`);
  console.log(`  ${"one delivery (detail)".padEnd(34)}${`${detail.ms.toFixed(1)} ms`.padStart(9)}`);
  console.log(
    JSON.stringify({
      deliveries: TOTAL,
      live: LIVE,
      liveArchivedSeconds: archivedMs / 1000,
      batchWriterPerSecond: Math.round(rest / (fillMs / 1000)),
      postgresSize: size,
      redisUsedMemoryGrowthBytes: memoryAfter - memoryBefore,
      latenciesMs: Object.fromEntries(latencies.map((l) => [l.query, l.p50])),
    }),
  );

  async function timedGet(
    url: string,
  ): Promise<{ ms: number; body: { items: Array<{ id: string }>; nextCursor?: string } }> {
    const start = performance.now();
    const response = await fetch(url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const body = (await response.json()) as { items: Array<{ id: string }>; nextCursor?: string };
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    return { ms: performance.now() - start, body };
  }
}

async function anyId(store: ArchiveStore): Promise<string> {
  const [row] = await store.sql<
    { id: string }[]
  >`select id from ${store.sql(TABLE)} where phase = 'SENT' limit 1`;
  return row?.id ?? "";
}

/** A delivery like an archived one, in one of 20 namespaces, created within the last 30 days. */
function synthetic(template: DeliveryRecord, i: number, now: number, count: number): ArchivedDelivery {
  const createdAt = new Date(now - 60_000 - Math.floor((i / count) * 30 * DAY)).toISOString();
  const failed = i % 10 === 0;
  return {
    record: {
      ...template,
      id: `${failed ? "payments" : "orders"}-${String(i).padStart(20, "0")}`,
      eventId: `fill-${i}`,
      eventType: failed ? "payment.received" : "job.created",
      namespace: i % NAMESPACES === 0 ? NAMESPACE : `${NAMESPACE}-${i % NAMESPACES}`,
      webhook: failed ? "payments" : "orders",
      phase: failed ? "FAILED" : "SENT",
      ...(failed ? { failureReason: "attempts-exhausted" as const } : {}),
      attempts: template.attempts.map((attempt) => ({ ...attempt, startedAt: createdAt })),
      occurredAt: createdAt,
      ingestedAt: createdAt,
      createdAt,
      updatedAt: createdAt,
    },
    retryTokens: [],
  };
}

async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let count = 0;
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1_000);
    cursor = next;
    count += found.length;
  } while (cursor !== "0");
  return count;
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
}

runBenchmark(main, DEADLINE_MS);
