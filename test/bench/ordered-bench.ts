import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { Pool } from "undici";
import { keyspace } from "../../contract/keys.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { startRedis } from "../env/redis.ts";
import { TEST_SECRET_BOX } from "../support/fixtures.ts";
import { log, onStop, runBenchmark, spawnReceiver, startBenchDispatcher, until } from "./bench-support.ts";

// `npm run bench:ordered`: the throughput of one Ordered webhook (Webhook.spec.ordering), whose
// deliveries go one at a time, against what bounds it: one round trip per delivery. Its own
// redis-server, receiver process and dispatcher process, all on 127.0.0.1.
//
//   rtt        RTT sequential POSTs by a plain undici Pool of one connection to the receiver:
//              the bound 1/RTT of any sender that waits for each answer
//   ordered    EVENTS events through HTTP ingest to an Ordered webhook → deliveries/s, from the
//              first ingest to its queue's end (the last SENT)
//   unordered  the same events to an Unordered webhook, for comparison
//
// Sizes: BENCH_ORDERED_EVENTS (2000), BENCH_RTT_REQUESTS (2000).

const EVENTS = Number(process.env.BENCH_ORDERED_EVENTS ?? 2_000);
const RTT_REQUESTS = Number(process.env.BENCH_RTT_REQUESTS ?? 2_000);
const INGEST_BATCH = 250;
const DEADLINE_MS = 300_000;
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const INGEST_TOKEN = `bench-ingest-${randomUUID()}`;
const ADMIN_TOKEN = `bench-admin-${randomUUID()}`;

async function main(): Promise<void> {
  const redisServer = await startRedis();
  onStop(() => redisServer.stop());
  const redis = new Redis(redisServer.url);
  onStop(async () => redis.disconnect());
  const [receiverPort] = await spawnReceiver();
  const target = new URL(`http://127.0.0.1:${receiverPort}/hook`);

  // ── rtt: one connection, one request at a time ────────────────────────────────────────────
  const pool = new Pool(target.origin, { connections: 1 });
  const post = async () => {
    const response = await pool.request({ method: "POST", path: "/hook", body: "{}" });
    await response.body.dump();
  };
  for (let i = 0; i < 200; i++) await post(); // warm
  const rttStart = performance.now();
  for (let i = 0; i < RTT_REQUESTS; i++) await post();
  const rttMs = (performance.now() - rttStart) / RTT_REQUESTS;
  await pool.close();
  log(`rtt        ${rttMs.toFixed(3)} ms per sequential POST → bound ${Math.round(1000 / rttMs)}/s`);

  const keyTag = "bench";
  const keys = keyspace(keyTag);
  await writeNamespaceRouting(
    redis,
    {
      namespace: "bench",
      enabled: true,
      signingSecrets: [SECRET],
      allowPlainHttp: true,
      webhooks: [
        { name: "ordered", event: "job.created", url: target.href, ordering: "Ordered" },
        { name: "unordered", event: "job.updated", url: target.href },
      ],
    },
    keys,
    TEST_SECRET_BOX,
  );
  const { base } = await startBenchDispatcher({
    redisUrl: redisServer.url,
    keyTag,
    ingestToken: INGEST_TOKEN,
    adminToken: ADMIN_TOKEN,
  });

  const ingest = async (type: string, prefix: string) => {
    for (let i = 0; i < EVENTS; i += INGEST_BATCH) {
      const events = Array.from({ length: Math.min(INGEST_BATCH, EVENTS - i) }, (_, j) => ({
        type,
        namespace: "bench",
        id: `${prefix}-${i + j}`,
        data: { n: i + j },
      }));
      const response = await fetch(`${base}/v1/events/batch`, {
        method: "POST",
        headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ events }),
      });
      if (response.status !== 202) throw new Error(`ingest answered ${response.status}`);
    }
  };
  /** Deliveries SENT so far, as the dispatcher counts them. */
  const sentCount = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return Number(
      /^dataforce_dispatcher_deliveries_completed_total\{phase="SENT",reason=""\} (\d+)$/m.exec(text)?.[1] ??
        0,
    );
  };

  for (const [phase, type, expected] of [
    ["ordered", "job.created", EVENTS],
    ["unordered", "job.updated", 2 * EVENTS],
  ] as const) {
    const started = performance.now();
    await ingest(type, phase);
    await until(async () => (await sentCount()) >= expected, DEADLINE_MS, `${phase} deliveries SENT`, 100);
    const seconds = (performance.now() - started) / 1000;
    const rate = EVENTS / seconds;
    log(
      `${phase.padEnd(10)} ${EVENTS} deliveries in ${seconds.toFixed(2)} s → ${Math.round(rate)}/s` +
        ` (${(rate / (1000 / rttMs)).toFixed(2)} × 1/RTT, ${((seconds * 1000) / EVENTS).toFixed(2)} ms each)`,
    );
  }
}

runBenchmark(main, DEADLINE_MS + 60_000);
