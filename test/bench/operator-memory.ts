import { readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { API_VERSION } from "../../operator/api/v1alpha1/index.ts";
import { startControlPlane } from "../env/control-plane.ts";
import { installCrds } from "../env/install-crds.ts";
import { startRedis, type TestRedis } from "../env/redis.ts";
import { TEST_ENCRYPTION_KEYS } from "../support/fixtures.ts";
import { createLargeWebhookEvents } from "../support/large-webhook-events.ts";
import {
  type AdminClient,
  adminClient,
  assertAlive,
  buildOperator,
  Fatal,
  heapFlags,
  MiB,
  median,
  metric,
  RssSampler,
  startBenchOperator,
  untilAlive,
  untilSettled,
} from "./operator-support.ts";

// `npm run bench:operator-memory`: the operator's memory with many large WebhookEvents in the
// cluster (issue 10, item 5). A real kube-apiserver + etcd gets BENCH_NAMESPACES namespaces, each
// with an integration and a Webhook, and BENCH_EVENTS WebhookEvents (SENT, with a status like the
// mirror writes) whose payloads are BENCH_PAYLOAD_BYTES of JSON. Then the real operator process
// runs against them, once per configuration, one after the other:
//
//   empty        the same namespaces before any WebhookEvent exists (the fixed cost)
//   all          every namespace watched (the chart's default), payloads dropped from the cache
//   all-keep     the same, with the cache keeping payloads (bench entry operator-keeping-payloads.ts)
//   scoped       OPERATOR_WATCH_NAMESPACES = the bench namespaces (one informer per namespace)
//   scoped-keep  the same, keeping payloads
//
// The operator runs as the image runs it: bundled (build/bundle.ts, into a temp dir), with
// the image's environment (RUNTIME_ENV). Each run: start, wait for /readyz
// (informers synced) and for the controllers to settle (work queues empty, reconcile counts
// still), then sample VmRSS from /proc every 250 ms and the V8 heap from /metrics for
// BENCH_SAMPLE_SECONDS (60). The informers re-list every BENCH_RESYNC_MS (30 s; production: every
// 10 minutes), so the window holds full re-lists. Peak is VmHWM over the process's whole life
// (start-up list included). Nothing here constrains the process: with the machine's memory free,
// V8 collects lazily, so these figures are what the operator takes, more than it needs.
//
// A configuration suffixed `@<MiB>` (e.g. `all@384`) runs with the heap V8 gives itself in a
// container with that memory limit: Node hands V8 the cgroup's limit (SetIsolateCreateParamsForNode
// → ResourceConstraints::ConfigureDefaults), and V8 takes half of it for the old generation and,
// up to 512 MiB, semi-spaces of 1 MiB (Heap::YoungGenerationSizeFromOldGenerationSize). Here
// that is --max-old-space-size and --max-semi-space-size, as the bench cannot put the process in
// a cgroup of its own. V8 then has to collect instead of growing: the run shows whether the
// operator lives, and how far under the limit its RSS stays (the limit is charged with RSS; the
// file-backed part, the node binary, is reclaimable). BENCH_RUNS picks configurations
// (comma-separated); BENCH_OPERATOR_NODE_ARGS adds node flags to every run.

const EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000);
const PAYLOAD_BYTES = Number(process.env.BENCH_PAYLOAD_BYTES ?? 60 * 1024);
const NAMESPACES = Number(process.env.BENCH_NAMESPACES ?? 20);
const SAMPLE_SECONDS = Number(process.env.BENCH_SAMPLE_SECONDS ?? 60);
const RESYNC_MS = Number(process.env.BENCH_RESYNC_MS ?? 30_000);
const RUNS = (
  process.env.BENCH_RUNS ??
  "empty,empty@576,all,all-keep,scoped,scoped-keep,all@256,scoped@256,all@576,scoped@576"
)
  .split(",")
  .filter(Boolean);
const NODE_ARGS = (process.env.BENCH_OPERATOR_NODE_ARGS ?? "").split(" ").filter(Boolean);
/** Parallel API requests while creating the WebhookEvents. */
const CREATE_CONCURRENCY = 24;
/** etcd holds every object twice until compaction (create, then the status write): 8 GiB, etcd's advised maximum. */
const ETCD_QUOTA_BYTES = 8 * 1024 ** 3;
const READY_DEADLINE_MS = 15 * 60_000;

const GROUP_PATH = `/apis/${API_VERSION}`;
const WEBHOOK = "bench-hook";
const KEEPING_PAYLOADS = join("test", "bench", "operator-keeping-payloads.ts");

interface RunConfig {
  label: string;
  withEvents: boolean;
  scoped: boolean;
  keepPayloads: boolean;
  /** The container memory limit whose heap sizes the run takes (see the top of the file), MiB. */
  containerMiB?: number;
}

const CONFIGS: Record<string, Omit<RunConfig, "label">> = {
  empty: { withEvents: false, scoped: false, keepPayloads: false },
  all: { withEvents: true, scoped: false, keepPayloads: false },
  "all-keep": { withEvents: true, scoped: false, keepPayloads: true },
  scoped: { withEvents: true, scoped: true, keepPayloads: false },
  "scoped-keep": { withEvents: true, scoped: true, keepPayloads: true },
};

/** `all`, `scoped-keep@384`, …: see the top of the file. */
function runConfig(label: string): RunConfig {
  const [name = "", container] = label.split("@");
  const base = CONFIGS[name];
  if (!base || (container !== undefined && !/^\d+$/.test(container))) {
    throw new Error(
      `unknown run ${label} (known: ${Object.keys(CONFIGS).join(", ")}, each with an optional @<MiB>)`,
    );
  }
  return { label, ...base, ...(container ? { containerMiB: Number(container) } : {}) };
}

interface RunResult {
  config: RunConfig;
  events: number;
  readySeconds: number;
  /** CPU time (user + system) the operator spent until ready: GC-bound when it nears wall time. */
  readyCpuSeconds: number;
  settledSeconds: number;
  /** VmHWM at the end of the window, MiB. */
  peakRssMiB: number;
  /** RssAnon, the largest sampled over the process's life, MiB. */
  peakAnonMiB: number;
  rss: { min: number; median: number; max: number };
  heapUsed: { median: number; max: number };
  heapTotalMaxMiB: number;
  externalMaxMiB: number;
  outcome: string;
}

const started = Date.now();
const log = (message: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(0)}s] ${message}`);

async function main(): Promise<void> {
  const configs = RUNS.map(runConfig);
  const logDir = await mkdtemp(join(tmpdir(), "dataforce-operator-memory-"));
  log(`operator memory: ${EVENTS} WebhookEvents × ${PAYLOAD_BYTES} B payload in ${NAMESPACES} namespaces`);
  log(`logs in ${logDir}`);
  const built = await buildOperator(logDir, [KEEPING_PAYLOADS]);
  const entries = { main: built.main, keepingPayloads: built.extra[0]! };
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const controlPlane = await startControlPlane({ etcdArgs: [`--quota-backend-bytes=${ETCD_QUOTA_BYTES}`] });
    cleanups.push(() => controlPlane.stop());
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const api = adminClient(controlPlane.kubeconfigPath, { maxSockets: CREATE_CONCURRENCY });
    cleanups.push(async () => api.agent.destroy());
    await installCrds(join(controlPlane.assetsDir, "kubectl"), controlPlane.kubeconfigPath);
    log("control plane, Redis and CRDs ready");

    const namespaces = Array.from(
      { length: NAMESPACES },
      (_, i) => `bench-mem-${String(i).padStart(3, "0")}`,
    );
    const leaseNamespace = "bench-mem-operator";
    const uids = await createAccounts(api, namespaces, leaseNamespace);

    const env = {
      KUBECONFIG: controlPlane.kubeconfigPath,
      OPERATOR_REDIS_URL: redis.url,
      OPERATOR_KEY_TAG: "bench-memory",
      OPERATOR_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      // the Lease's default timings: a stopped run releases it, the next takes it at once
      OPERATOR_LEASE_NAMESPACE: leaseNamespace,
      OPERATOR_RESYNC_PERIOD_MS: String(RESYNC_MS),
      // a retention sweep (which walks every cached event) inside the window
      OPERATOR_RETENTION_INTERVAL_MS: "10000",
      OPERATOR_LOG_LEVEL: "info",
    };
    const results: RunResult[] = [];
    let eventsCreated = 0;
    for (const config of configs) {
      if (config.withEvents && eventsCreated === 0) {
        eventsCreated = await createEvents(api, namespaces, uids);
      }
      if (!config.withEvents && eventsCreated > 0) {
        log(
          `skipping ${config.label}: it must run before the WebhookEvents exist (put it first in BENCH_RUNS)`,
        );
        continue;
      }
      const runEnv = {
        ...env,
        ...(config.scoped ? { OPERATOR_WATCH_NAMESPACES: namespaces.join(",") } : {}),
      };
      const entry = config.keepPayloads ? entries.keepingPayloads : entries.main;
      const result = await measure(
        config,
        entry,
        runEnv,
        logDir,
        redis,
        config.withEvents ? eventsCreated : 0,
      );
      results.push(result);
      log(
        `${config.label}: ${result.outcome}, peak ${result.peakRssMiB.toFixed(0)} MiB, median ${result.rss.median.toFixed(0)} MiB`,
      );
    }
    printTable(results);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => log(String(error)));
  }
}

// ── the cluster's contents ──────────────────────────────────────────────────────────────────────

/** Namespaces, an integration (retention that deletes nothing) and a Webhook in each; the Webhooks' uids. */
async function createAccounts(
  api: AdminClient,
  namespaces: readonly string[],
  leaseNamespace: string,
): Promise<Map<string, string>> {
  const perNamespace = Math.ceil(EVENTS / namespaces.length);
  const uids = new Map<string, string>();
  for (const ns of [leaseNamespace, ...namespaces]) {
    await api.must("POST", "/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ns },
    });
  }
  await Promise.all(
    namespaces.map(async (ns) => {
      await api.must("POST", `${GROUP_PATH}/namespaces/${ns}/webhookintegrations`, {
        apiVersion: API_VERSION,
        kind: "WebhookIntegration",
        metadata: { name: "default", namespace: ns },
        spec: {
          enabled: true,
          eventLog: { mirror: "All", retention: "168h", maxEvents: Math.max(1000, perNamespace) },
        },
      });
      const webhook = await api.must("POST", `${GROUP_PATH}/namespaces/${ns}/webhooks`, {
        apiVersion: API_VERSION,
        kind: "Webhook",
        metadata: { name: WEBHOOK, namespace: ns },
        spec: { event: "job.created", url: "https://receiver.example/hook" },
      });
      uids.set(ns, (JSON.parse(webhook) as { metadata: { uid: string } }).metadata.uid);
    }),
  );
  return uids;
}

/** EVENTS WebhookEvents as the mirror writes them (create, then a status write), spread over the namespaces. */
async function createEvents(
  api: AdminClient,
  namespaces: readonly string[],
  uids: ReadonlyMap<string, string>,
): Promise<number> {
  log(`creating ${EVENTS} WebhookEvents (${((EVENTS * PAYLOAD_BYTES) / MiB).toFixed(0)} MiB of payloads)`);
  const t0 = Date.now();
  await createLargeWebhookEvents(api, {
    namespaces,
    webhook: WEBHOOK,
    uids,
    count: EVENTS,
    payloadBytes: PAYLOAD_BYTES,
    concurrency: CREATE_CONCURRENCY,
    onProgress: (done) => {
      if (done % 2000 === 0)
        log(`  ${done} / ${EVENTS} (${(done / ((Date.now() - t0) / 1000)).toFixed(0)}/s)`);
    },
  });
  log(`created ${EVENTS} WebhookEvents in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return EVENTS;
}

// ── one operator run ────────────────────────────────────────────────────────────────────────────

async function measure(
  config: RunConfig,
  entry: string,
  env: Record<string, string>,
  logDir: string,
  redis: TestRedis,
  events: number,
): Promise<RunResult> {
  // a leftover routing epoch makes no difference to memory, but start each run from the same Redis
  const client = redis.connect();
  await client.flushall();
  client.disconnect();
  const logFile = join(logDir, `operator-${config.label}.log`);
  log(`${config.label}: starting the operator`);
  const operator = await startBenchOperator({
    name: `bench-${config.label.replace("@", "-")}`,
    entry,
    logFile,
    env,
    nodeArgs: [...(config.containerMiB ? heapFlags(config.containerMiB) : []), ...NODE_ARGS],
  });
  const { proc, pid, base } = operator;
  const t0 = Date.now();
  const sampler = new RssSampler(pid);
  const result: RunResult = {
    config,
    events,
    readySeconds: Number.NaN,
    readyCpuSeconds: Number.NaN,
    settledSeconds: Number.NaN,
    peakRssMiB: Number.NaN,
    peakAnonMiB: Number.NaN,
    rss: { min: Number.NaN, median: Number.NaN, max: Number.NaN },
    heapUsed: { median: Number.NaN, max: Number.NaN },
    heapTotalMaxMiB: Number.NaN,
    externalMaxMiB: Number.NaN,
    outcome: "ok",
  };
  try {
    await untilAlive(proc, logFile, async () => (await fetch(`${base}/readyz`)).ok, "ready", {
      deadlineMs: READY_DEADLINE_MS,
    });
    result.readySeconds = (Date.now() - t0) / 1000;
    result.readyCpuSeconds = cpuSeconds(pid);
    log(
      `${config.label}: ready after ${result.readySeconds.toFixed(1)} s (VmRSS ${sampler.last().toFixed(0)} MiB so far peak ${sampler.hwm().toFixed(0)})`,
    );
    await untilSettled(operator, READY_DEADLINE_MS, (text) => {
      if (metric(text, "dataforce_operator_webhookevents_deleted_total") > 0) {
        throw new Fatal("retention deleted WebhookEvents: the bench's integrations should keep them all");
      }
      return true;
    });
    result.settledSeconds = (Date.now() - t0) / 1000;

    // the window
    sampler.startWindow();
    const heapUsed: number[] = [];
    const heapTotal: number[] = [];
    const external: number[] = [];
    const end = Date.now() + SAMPLE_SECONDS * 1000;
    while (Date.now() < end) {
      assertAlive(proc, "during the window");
      const text = await (await fetch(`${base}/metrics`)).text();
      heapUsed.push(metric(text, "nodejs_heap_size_used_bytes") / MiB);
      heapTotal.push(metric(text, "nodejs_heap_size_total_bytes") / MiB);
      external.push(metric(text, "nodejs_external_memory_bytes") / MiB);
      await sleep(2_000);
    }
    const window = sampler.window();
    result.rss = { min: Math.min(...window), median: median(window), max: Math.max(...window) };
    result.heapUsed = { median: median(heapUsed), max: Math.max(...heapUsed) };
    result.heapTotalMaxMiB = Math.max(...heapTotal);
    result.externalMaxMiB = Math.max(...external);
    result.peakRssMiB = sampler.hwm();
    result.peakAnonMiB = sampler.anonMax();
  } catch (error) {
    result.peakRssMiB = sampler.hwm();
    result.peakAnonMiB = sampler.anonMax();
    result.outcome = error instanceof Error ? error.message.split("\n")[0]! : String(error);
  } finally {
    sampler.stop();
    await proc.stop(15_000);
  }
  return result;
}

/** User + system CPU seconds of a process (/proc/<pid>/stat fields 14 and 15, in USER_HZ = 100 ticks). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // from field 3 (state) on
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

function printTable(results: readonly RunResult[]): void {
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : "–");
  const rows = results.map((r) => [
    r.config.label,
    r.config.scoped ? `${NAMESPACES} namespaces` : "all",
    r.config.keepPayloads ? "kept" : "dropped",
    String(r.events),
    r.events > 0 ? `${(PAYLOAD_BYTES / 1024).toFixed(0)} KiB` : "–",
    `${f(r.readySeconds)} (${f(r.readyCpuSeconds)})`,
    f(r.peakRssMiB),
    f(r.peakAnonMiB),
    `${f(r.rss.median)} (${f(r.rss.min)}–${f(r.rss.max)})`,
    `${f(r.heapUsed.median)} / ${f(r.heapUsed.max)}`,
    f(r.heapTotalMaxMiB),
    f(r.externalMaxMiB),
    r.outcome,
  ]);
  const header = [
    "run",
    "watch",
    "payload in cache",
    "WebhookEvents",
    "payload",
    "ready s (CPU s)",
    "peak RSS MiB (VmHWM)",
    "peak anon MiB (RssAnon, sampled)",
    "RSS MiB in window: median (min–max)",
    "V8 heap used MiB: median / max",
    "heap total max",
    "external max",
    "outcome",
  ];
  console.log(
    `\noperator memory, ${SAMPLE_SECONDS} s window, re-list every ${RESYNC_MS / 1000} s, node ${process.version}`,
  );
  console.log("name@L: the V8 heap limits Node sets in a container with an L MiB memory limit");
  console.log(`| ${header.join(" | ")} |`);
  console.log(`| ${header.map(() => "---").join(" | ")} |`);
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
}

await main();
