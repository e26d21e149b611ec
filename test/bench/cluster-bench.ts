import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { partitionedKeyspace } from "../../contract/partitions.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { startRedis } from "../env/redis.ts";
import { startRedisCluster } from "../env/redis-cluster.ts";
import { TEST_SECRET_BOX } from "../support/fixtures.ts";
import {
  cpuSeconds,
  log,
  onStop,
  runBenchmark,
  spawnReceiver,
  startBenchDispatcher,
  until,
} from "./bench-support.ts";

// `node test/bench/cluster-bench.ts`: deliveries/s through HTTP ingest with the keyspace on one
// redis-server (1 partition) and on a Redis Cluster of 3 masters (3 partitions), in the same run,
// with CPU per delivery of the dispatcher(s), of Redis (all servers) and of the receiver. Events go
// to 3 namespaces, one per partition. Sizes: BENCH_EVENTS (20 000), BENCH_WARMUP (5 000),
// BENCH_REPLICAS (dispatcher processes, 1).

const EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5_000);
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 1);
const BATCH = 250;
const CONCURRENCY = 4;
const DEADLINE_MS = 180_000;
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const INGEST_TOKEN = `bench-ingest-${randomUUID()}`;
const ADMIN_TOKEN = `bench-admin-${randomUUID()}`;

interface Setup {
  name: string;
  partitions: number;
  client: RedisClient;
  env: Record<string, string>;
  redisUrl: string;
  redisPids: number[];
}

async function main(): Promise<void> {
  log(`cluster benchmark on ${(await import("node:os")).cpus().length} CPUs, node ${process.version}`);
  const [receiverPort, receiverPid] = await spawnReceiver();
  const url = `http://127.0.0.1:${receiverPort}/hook`;

  const single = await startRedis();
  onStop(() => single.stop());
  const singleClient = new Redis(single.url);
  onStop(async () => singleClient.disconnect());
  const cluster = await startRedisCluster(3);
  onStop(() => cluster.stop());
  const clusterClient = cluster.connect();
  onStop(async () => clusterClient.disconnect());

  const pidOf = async (redis: Redis) => Number(/process_id:(\d+)/.exec(await redis.info("server"))?.[1]);
  const setups: Setup[] = [
    {
      name: "1 redis-server, 1 partition",
      partitions: 1,
      client: singleClient,
      env: {},
      redisUrl: single.url,
      redisPids: [await pidOf(singleClient)],
    },
    {
      name: "Cluster of 3 masters, 3 partitions",
      partitions: 3,
      client: clusterClient,
      env: { DISPATCHER_REDIS_CLUSTER_NODES: cluster.nodes, DISPATCHER_PARTITIONS: "3" },
      redisUrl: "redis://127.0.0.1:6379",
      redisPids: await Promise.all(
        cluster.ports.map(async (port) => {
          const node = new Redis({ host: "127.0.0.1", port });
          try {
            return await pidOf(node);
          } finally {
            node.disconnect();
          }
        }),
      ),
    },
  ];
  const results: string[] = [];
  const only = process.env.BENCH_ONLY;
  for (const setup of setups)
    if (!only || setup.name.includes(only)) results.push(await measure(setup, url, receiverPid));
  log("results:");
  for (const line of results) log(`  ${line}`);
}

async function measure(setup: Setup, url: string, receiverPid: number): Promise<string> {
  const keyTag = `bench-${randomUUID().slice(0, 8)}`;
  const partitions = partitionedKeyspace(keyTag, setup.partitions);
  // three namespaces, one per partition when there are three
  const namespaces: string[] = [];
  for (let i = 0; namespaces.length < 3; i++) {
    const name = `bench-${i}`;
    if (setup.partitions === 1 || partitions.indexOf(name) === namespaces.length) namespaces.push(name);
  }
  for (const namespace of namespaces) {
    await writeNamespaceRouting(
      setup.client,
      {
        namespace,
        enabled: true,
        signingSecrets: [SECRET],
        allowPlainHttp: true,
        webhooks: [{ name: "hook", event: "job.created", url }],
      },
      partitions.global,
      TEST_SECRET_BOX,
    );
  }
  const dispatchers: ChildProcess[] = [];
  const bases: string[] = [];
  for (let replica = 0; replica < REPLICAS; replica++) {
    const started = await startBenchDispatcher({
      redisUrl: setup.redisUrl,
      keyTag,
      ingestToken: INGEST_TOKEN,
      adminToken: ADMIN_TOKEN,
      env: {
        ...setup.env,
        DISPATCHER_CONSUMER_NAME: `bench-${replica}`,
        DISPATCHER_ENDPOINT_CONCURRENCY: "16",
        DISPATCHER_STATUS_STREAM_MAXLEN: String(10 * (WARMUP + EVENTS)),
      },
    });
    dispatchers.push(started.process);
    bases.push(started.base);
  }
  const statusEntries = async () => {
    let total = 0;
    for (const keys of partitions.all) total += await setup.client.xlen(keys.status);
    return total;
  };
  let nextBase = 0;
  const ingest = async (prefix: string, count: number) => {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const first = next;
        next += BATCH;
        const events = Array.from({ length: Math.min(BATCH, count - first) }, (_, i) => ({
          type: "job.created",
          namespace: namespaces[(first + i) % namespaces.length]!,
          id: `${prefix}-${first + i}`,
          data: { jobId: `j-${first + i}`, status: "created" },
        }));
        const response = await fetch(`${bases[nextBase++ % bases.length]}/v1/events/batch`, {
          method: "POST",
          headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ events }),
        });
        if (response.status !== 202) throw new Error(`ingest answered ${response.status}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  };
  // QUEUED + SENT: two status entries per delivery
  await ingest("warmup", WARMUP);
  await until(async () => (await statusEntries()) >= 2 * WARMUP, DEADLINE_MS, "warm-up SENT", 20).catch(
    async (error) => {
      for (const keys of partitions.all) {
        log(
          `${keys.prefix} status ${await setup.client.xlen(keys.status)} deliveries ${await setup.client.xlen(keys.deliveries)} scheduled ${await setup.client.zcard(keys.scheduled)} events ${await setup.client.xlen(keys.events)} pending ${JSON.stringify(await setup.client.xpending(keys.deliveries, "delivery"))}`,
        );
      }
      throw error;
    },
  );

  const pids = { dispatcher: dispatchers.map((d) => d.pid!), redis: setup.redisPids, receiver: receiverPid };
  const cpuBefore = cpuSeconds(pids);
  const began = performance.now();
  await ingest("max", EVENTS);
  await until(async () => (await statusEntries()) >= 2 * (WARMUP + EVENTS), DEADLINE_MS, "all SENT", 10);
  const seconds = (performance.now() - began) / 1000;
  const cpuAfter = cpuSeconds(pids);
  const perDelivery = (name: keyof typeof pids) =>
    (((cpuAfter[name] ?? 0) - (cpuBefore[name] ?? 0)) * 1e6) / EVENTS;
  for (const dispatcher of dispatchers) dispatcher.kill("SIGTERM");
  const line =
    `${setup.name}, ${REPLICAS} dispatcher(s): ${(EVENTS / seconds).toFixed(0)} deliveries/s; CPU per delivery: ` +
    `dispatcher ${perDelivery("dispatcher").toFixed(0)} µs, Redis ${perDelivery("redis").toFixed(0)} µs ` +
    `(${setup.redisPids.length} server(s)), receiver ${perDelivery("receiver").toFixed(0)} µs`;
  log(line);
  return line;
}

runBenchmark(main, DEADLINE_MS * 3);
