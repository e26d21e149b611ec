import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { stringify } from "yaml";
import { EVENT_TYPES, type EventType } from "../../contract/event-types.ts";
import { type Keyspace, keyspace } from "../../contract/keys.ts";
import { API_VERSION, LABEL_PHASE } from "../../operator/api/v1alpha1/index.ts";
import { type ControlPlane, startControlPlane } from "../env/control-plane.ts";
import { installCrds } from "../env/install-crds.ts";
import { startRedis } from "../env/redis.ts";
import { TEST_ENCRYPTION_KEYS } from "../support/fixtures.ts";
import { cpuSeconds, log, runBenchmark, spawnReceiver, startBenchDispatcher } from "./bench-support.ts";
import {
  type AdminClient,
  adminClient,
  type BenchOperator,
  buildOperator,
  heapFlags,
  labelValues,
  MiB,
  metric,
  RssSampler,
  startBenchOperator,
  untilAlive,
  untilSettled,
} from "./operator-support.ts";

// `npm run bench:operator`: the control plane's cost (issue 16, item 1). On a real kube-apiserver +
// etcd (test/env/control-plane.ts), a real Redis and the real operator process (bundled and run
// as the image runs it, see operator-support.ts), per scenario:
//
//   1k    1,000 Webhooks in one namespace
//   5k    5,000 Webhooks in one namespace
//   10k   10,000 Webhooks across 100 namespaces (100 each)
//
// Every namespace has a WebhookIntegration `default` (enabled, plain HTTP allowed: the receiver is
// http://127.0.0.1). The Webhooks subscribe to the 8 event types in turn. Each scenario:
//
//   1. a fresh control plane, Redis, dispatcher and operator. Fresh control plane rather than
//      fresh namespaces: this control plane has no kube-controller-manager, so a namespace is never
//      really deleted (its objects stay, Terminating), and the next scenario's operator would list
//      and cache the previous scenario's Webhooks and WebhookEvents.
//   2. namespaces and integrations applied (not timed), the operator started and settled.
//   3. the Webhooks as one multi-document YAML with `kubectl apply --server-side -f` (one PATCH per
//      object instead of client-side apply's GET + POST; what a GitOps sync with server-side apply
//      sends). Timed from the apply returning until every Webhook shows Ready=True with
//      status.observedGeneration == metadata.generation (a list per namespace still pending, once
//      a second or, when the lists take longer than 200 ms, with 4 times their duration between
//      polls: a poll, so the figure can be up to a poll late; the bench's requests are counted).
//   4. the operator left to settle (queues empty, reconcile counts still): reconciles per object per
//      controller, routing writes and API requests count from the apply's start to here.
//   5. a burst: events through the dispatcher's ingest API (POST /v1/events/batch) that fan out to
//      about BENCH_BURST_DELIVERIES (1,000) deliveries, delivered by the real dispatcher to the
//      bench receiver (node:http, 200 to everything). Mirror lag: from the POST until every
//      delivery's WebhookEvent exists with phase SENT (metadata-only lists every 500 ms).
//   6. settled again, then BENCH_SETTLE_SECONDS (30) of quiet: settled RSS and V8 heap.
//
// Where the numbers come from:
//   reconciles      the operator's controller_runtime_reconcile_total{controller}
//   routing writes  the routing revision in Redis: every routing write (written, kept or deleted) bumps it
//                   (contract/scripts/write-routing.ts), so the delta is the count, without MONITOR
//   API requests    kube-apiserver's audit log (level Metadata, stage RequestReceived: one line per
//                   request with verb, resource, user agent). apiserver_request_total has no client
//                   label, and the operator counts only its writes (dataforce_operator_api_writes_total,
//                   printed beside). The operator's requests are those from neither kubectl, nor this
//                   bench (its own user agent), nor the API server itself; the user agents seen are printed.
//   memory          VmHWM (peak) and VmRSS from /proc/<pid>/status; V8 heap used from the operator's
//                   nodejs_heap_size_used_bytes, scraped every second.
//
// The operator runs with the chart's defaults (API QPS 20, burst 40: the mirror's write rate;
// BENCH_OPERATOR_API_QPS / BENCH_OPERATOR_API_BURST change them), and
// unconstrained like operator-memory.ts's plain runs: BENCH_CONTAINER_MIB=256 gives it the V8 heap
// limits Node sets in a container with that memory limit. BENCH_SCENARIOS picks scenarios
// (comma-separated), BENCH_SCALE multiplies the Webhooks per namespace (0.2: 200, 1,000 and 2,000),
// BENCH_OPERATOR_NODE_ARGS adds node flags. The bench prints; it fails only when a step does not
// finish (every wait has a deadline), never on a missed target.

interface Scenario {
  name: string;
  namespaces: number;
  perNamespace: number;
}

const SCENARIOS: Record<string, Omit<Scenario, "name">> = {
  "1k": { namespaces: 1, perNamespace: 1_000 },
  "5k": { namespaces: 1, perNamespace: 5_000 },
  "10k": { namespaces: 100, perNamespace: 100 },
};
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const SELECTED = (process.env.BENCH_SCENARIOS ?? "1k,5k,10k").split(",").filter(Boolean);
const BURST_DELIVERIES = Number(process.env.BENCH_BURST_DELIVERIES ?? Math.round(1_000 * SCALE));
const SETTLE_SECONDS = Number(process.env.BENCH_SETTLE_SECONDS ?? 30);
const CONTAINER_MIB = Number(process.env.BENCH_CONTAINER_MIB ?? 0);
const NODE_ARGS = [
  ...(CONTAINER_MIB > 0 ? heapFlags(CONTAINER_MIB) : []),
  ...(process.env.BENCH_OPERATOR_NODE_ARGS ?? "").split(" ").filter(Boolean),
];
/** The chart's defaults: the WebhookEvent write budget (mirror, retries, retention). */
const API_QPS = Number(process.env.BENCH_OPERATOR_API_QPS ?? 20);
const API_BURST = Number(process.env.BENCH_OPERATOR_API_BURST ?? 40);
/** Deadline of each wait (operator ready, all Ready, settled, mirrored). */
const WAIT_MS = 15 * 60_000;
const BENCH_USER_AGENT = "dataforce-operator-bench";
const LEASE_NAMESPACE = "dataforce-system";
const GROUP_PATH = `/apis/${API_VERSION}`;
const INGEST_TOKEN = `bench-ingest-${randomUUID()}`;
const ADMIN_TOKEN = `bench-admin-${randomUUID()}`;
const INGEST_BATCH = 500;

/** What the issue asks for (issue 16, "Targets"). */
const TARGETS = {
  readySeconds5k: 60,
  integrationReconcilesPerSecond: 2,
  peakRssMiB10k: 200,
  settledRssMiB10k: 150,
};

/** A phase's window, epoch ms. */
interface Window {
  start: number;
  end: number;
}

interface Requests {
  /** The operator's requests by verb, and by `verb resource[/subresource]`. */
  byVerb: Map<string, number>;
  byResource: Map<string, number>;
  kubectl: number;
  bench: number;
}

interface PhaseCounts {
  reconciles: Map<string, number>;
  routingWrites: number;
  /** dataforce_operator_api_writes_total, the operator's own count of its writes. */
  operatorWrites: number;
  operatorCpuSeconds: number;
  apiServerCpuSeconds: number;
  etcdCpuSeconds: number;
  requests?: Requests;
}

interface ScenarioResult {
  scenario: Scenario;
  webhooks: number;
  applySeconds: number;
  /** After the apply returned: routing holding every Webhook, every Webhook Ready. */
  routingAfterApplySeconds: number;
  readyAfterApplySeconds: number;
  /** From the apply's start until the operator settled. */
  applySettledSeconds: number;
  readyPolls: number;
  integrationRate: { mean: number; peak: number; seconds: number };
  apply: PhaseCounts;
  burst: PhaseCounts;
  routingBytes: { total: number; largest: number };
  deliveries: number;
  burstEvents: number;
  deliveredSeconds: number;
  allEventsExistSeconds: number;
  mirrorLagSeconds: number;
  peakMirrorLagMetric: number;
  rss: { beforeApply: number; peakApply: number; peak: number; settled: number };
  heap: { beforeApply: number; maxUsed: number; maxTotal: number; settled: number };
  userAgents: string[];
}

async function main(): Promise<void> {
  const scenarios = SELECTED.map((name) => {
    const base = SCENARIOS[name];
    if (!base) throw new Error(`unknown scenario ${name} (known: ${Object.keys(SCENARIOS).join(", ")})`);
    return { name, ...base, perNamespace: Math.max(1, Math.round(base.perNamespace * SCALE)) };
  });
  const logDir = await mkdtemp(join(tmpdir(), "dataforce-operator-bench-"));
  log(
    `operator benchmark on ${cpus().length} CPUs, node ${process.version}, load ${loadavg()[0]!.toFixed(1)}; ` +
      `scenarios ${scenarios.map((s) => `${s.name} (${s.namespaces} × ${s.perNamespace})`).join(", ")}`,
  );
  log(`logs in ${logDir}`);
  const { main: entry } = await buildOperator(logDir);
  const [receiverPort] = await spawnReceiver();
  const results: ScenarioResult[] = [];
  const failed: string[] = [];
  for (const scenario of scenarios) {
    try {
      const result = await runScenario(scenario, entry, logDir, receiverPort);
      results.push(result);
      printScenario(result);
    } catch (error) {
      // the next scenario has a control plane of its own: carry on, and say so at the end
      const message = error instanceof Error ? error.message : String(error);
      log(`${scenario.name} failed: ${message}`);
      failed.push(`${scenario.name}: ${message.split("\n")[0]}`);
    }
  }
  printTargets(results, failed);
  if (failed.length > 0) throw new Error(`${failed.length} scenario(s) failed: ${failed.join("; ")}`);
}

// ── one scenario ────────────────────────────────────────────────────────────────────────────────

async function runScenario(
  scenario: Scenario,
  entry: string,
  logDir: string,
  receiverPort: number,
): Promise<ScenarioResult> {
  await writeFile(join(logDir, `${scenario.name}.audit-policy.yaml`), AUDIT_POLICY);
  const auditLog = join(logDir, `${scenario.name}.audit.log`);
  const stops: Array<() => Promise<void>> = [];
  try {
    log(`${scenario.name}: control plane, Redis, CRDs`);
    const controlPlane = await startControlPlane({
      apiServerArgs: [
        `--audit-policy-file=${join(logDir, `${scenario.name}.audit-policy.yaml`)}`,
        `--audit-log-path=${auditLog}`,
        "--audit-log-format=json",
      ],
    });
    stops.push(() => controlPlane.stop());
    const redisServer = await startRedis();
    stops.push(() => redisServer.stop());
    const redis = redisServer.connect();
    stops.push(async () => redis.disconnect());
    const api = adminClient(controlPlane.kubeconfigPath, { maxSockets: 8, userAgent: BENCH_USER_AGENT });
    stops.push(async () => api.agent.destroy());
    const kubectlBin = join(controlPlane.assetsDir, "kubectl");
    await installCrds(kubectlBin, controlPlane.kubeconfigPath);
    const pids = controlPlanePids(controlPlane);

    const namespaces = Array.from({ length: scenario.namespaces }, (_, i) =>
      scenario.namespaces === 1
        ? `bench-${scenario.name}`
        : `bench-${scenario.name}-${String(i).padStart(3, "0")}`,
    );
    await kubectlApply(kubectlBin, controlPlane, join(logDir, `${scenario.name}.setup.yaml`), [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: LEASE_NAMESPACE } },
      ...namespaces.map((name) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } })),
      ...namespaces.map((namespace) => integration(namespace, scenario.perNamespace)),
    ]);

    const keyTag = `bench-${scenario.name}`;
    const keys = keyspace(keyTag);
    const dispatcher = await startBenchDispatcher({
      redisUrl: redisServer.url,
      keyTag,
      ingestToken: INGEST_TOKEN,
      adminToken: ADMIN_TOKEN,
    });
    stops.push(() => stopChild(dispatcher.process));

    log(`${scenario.name}: starting the operator`);
    const operator = await startBenchOperator({
      name: `bench-${scenario.name}`,
      entry,
      logFile: join(logDir, `${scenario.name}.operator.log`),
      env: {
        KUBECONFIG: controlPlane.kubeconfigPath,
        OPERATOR_REDIS_URL: redisServer.url,
        OPERATOR_KEY_TAG: keyTag,
        OPERATOR_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
        OPERATOR_LEASE_NAMESPACE: LEASE_NAMESPACE,
        OPERATOR_API_QPS: String(API_QPS),
        OPERATOR_API_BURST: String(API_BURST),
        OPERATOR_LOG_LEVEL: "info",
      },
      nodeArgs: NODE_ARGS,
    });
    stops.push(() => operator.proc.stop(15_000));
    const rss = new RssSampler(operator.pid);
    stops.push(async () => rss.stop());
    const sampler = new MetricsSampler(operator);
    stops.push(() => sampler.stop());
    await untilAlive(
      operator.proc,
      operator.logFile,
      async () => (await fetch(`${operator.base}/readyz`)).ok,
      "ready",
      {
        deadlineMs: WAIT_MS,
      },
    );
    await waitFor(
      operator,
      "integrations Ready",
      async () => (await notReady(api, namespaces, "webhookintegrations")).length === 0,
    );
    await untilSettled(operator, WAIT_MS);
    const beforeApply = { rss: rss.last(), heap: await heapUsedNow(operator) };
    log(
      `${scenario.name}: operator settled with ${namespaces.length} integration(s) (VmRSS ${beforeApply.rss.toFixed(0)} MiB, ` +
        `VmHWM ${rss.hwm().toFixed(0)} MiB, heap used ${beforeApply.heap.toFixed(0)} MiB)`,
    );

    // ── the apply ──
    const webhooks = namespaces.flatMap((namespace) =>
      Array.from({ length: scenario.perNamespace }, (_, i) => webhook(namespace, i, receiverPort)),
    );
    const yamlFile = join(logDir, `${scenario.name}.webhooks.yaml`);
    const applyStart = await snapshot(operator, redis, keys, pids);
    log(`${scenario.name}: kubectl apply --server-side of ${webhooks.length} Webhooks`);
    await kubectlApply(kubectlBin, controlPlane, yamlFile, webhooks);
    const applied = Date.now();
    const applySeconds = (applied - applyStart.at) / 1000;
    log(`${scenario.name}: the apply returned after ${applySeconds.toFixed(1)} s`);
    let routingComplete = Number.NaN;
    let readyPolls = 0;
    let ready = Number.NaN;
    let pending = namespaces;
    await waitFor(
      operator,
      "every Webhook Ready",
      async () => {
        const pollStart = Date.now();
        readyPolls++;
        pending = await notReady(api, pending, "webhooks", scenario.perNamespace);
        ready = Date.now();
        if (Number.isNaN(routingComplete) && (await routedWebhooks(redis, keys)) === webhooks.length) {
          routingComplete = Date.now();
        }
        if (pending.length === 0) return true;
        // lists of thousands of objects load the API server (and this process): a poll a
        // second at most, and the bench's lists at most a fifth of the time
        await sleep(Math.max(1_000, 5 * (ready - pollStart)) - (Date.now() - pollStart));
        return false;
      },
      0,
    );
    const integrationReconcilesAtReady = integrationReconciles(await operator.metrics());
    if (Number.isNaN(routingComplete)) routingComplete = ready;
    const peakApplyRss = rss.hwm();
    log(
      `${scenario.name}: all ${webhooks.length} Ready ${((ready - applied) / 1000).toFixed(1)} s after the apply returned ` +
        `(${readyPolls} polls); VmHWM ${peakApplyRss.toFixed(0)} MiB`,
    );
    await untilSettled(operator, WAIT_MS);
    const applyEnd = await snapshot(operator, redis, keys, pids);
    const routingBytes = await routingSizes(redis, keys);

    // ── the burst ──
    await waitFor(operator, "the dispatcher on the latest routing", async () => {
      const revision = Number((await redis.get(keys.routingRevision)) ?? 0);
      const text = await (await fetch(`${dispatcher.base}/metrics`)).text();
      return metric(text, "dataforce_dispatcher_routing_revision") >= revision;
    });
    const burst = burstEvents(namespaces, scenario.perNamespace, BURST_DELIVERIES, scenario.name);
    log(`${scenario.name}: burst of ${burst.events.length} events → ${burst.deliveries} deliveries`);
    const burstStart = await snapshot(operator, redis, keys, pids);
    for (let i = 0; i < burst.events.length; i += INGEST_BATCH) {
      const response = await fetch(`${dispatcher.base}/v1/events/batch`, {
        method: "POST",
        headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ events: burst.events.slice(i, i + INGEST_BATCH) }),
      });
      if (response.status !== 202)
        throw new Error(`ingest answered ${response.status}: ${await response.text()}`);
    }
    let delivered = Number.NaN;
    let allExist = Number.NaN;
    let peakMirrorLag = 0;
    await waitFor(
      operator,
      `${burst.deliveries} WebhookEvents SENT`,
      async () => {
        if (Number.isNaN(delivered)) {
          const text = await (await fetch(`${dispatcher.base}/metrics`)).text();
          if (
            metric(text, "dataforce_dispatcher_deliveries_completed_total", { phase: "SENT" }) >=
            burst.deliveries
          )
            delivered = Date.now();
        }
        peakMirrorLag = Math.max(
          peakMirrorLag,
          metric(await operator.metrics(), "dataforce_operator_mirror_lag_seconds"),
        );
        const phases = await eventPhases(api);
        if (Number.isNaN(allExist) && phases.total >= burst.deliveries) allExist = Date.now();
        return (phases.byPhase.get("SENT") ?? 0) >= burst.deliveries;
      },
      500,
    );
    const mirrored = Date.now();
    log(
      `${scenario.name}: delivered after ${((delivered - burstStart.at) / 1000).toFixed(1)} s, ` +
        `every WebhookEvent SENT after ${((mirrored - burstStart.at) / 1000).toFixed(1)} s`,
    );
    await untilSettled(
      operator,
      WAIT_MS,
      (text) => metric(text, "dataforce_operator_mirror_pending_deliveries") === 0,
    );
    const burstEnd = await snapshot(operator, redis, keys, pids);
    log(`${scenario.name}: settled; ${SETTLE_SECONDS} s of quiet before the settled RSS`);
    await sleep(SETTLE_SECONDS * 1000);
    const settled = { rss: rss.last(), heap: await heapUsedNow(operator) };
    await sampler.stop();

    const applyWindow = { start: applyStart.at, end: applyEnd.at };
    const burstWindow = { start: burstStart.at, end: burstEnd.at };
    const audit = await auditRequests(auditLog, [applyWindow, burstWindow]);
    return {
      scenario,
      webhooks: webhooks.length,
      applySeconds,
      routingAfterApplySeconds: (routingComplete - applied) / 1000,
      readyAfterApplySeconds: (ready - applied) / 1000,
      applySettledSeconds: (applyEnd.at - applyStart.at) / 1000,
      readyPolls,
      integrationRate: {
        // exact counts at the apply's start and at all Ready; the busiest 5 s from the 1 s samples
        mean:
          (integrationReconcilesAtReady - integrationReconciles(applyStart.metrics)) /
          ((ready - applyStart.at) / 1000),
        peak: sampler.busiestIntegrationRate(applyStart.at, ready),
        seconds: (ready - applyStart.at) / 1000,
      },
      apply: { ...difference(applyStart, applyEnd), requests: audit.windows[0]! },
      burst: { ...difference(burstStart, burstEnd), requests: audit.windows[1]! },
      routingBytes,
      deliveries: burst.deliveries,
      burstEvents: burst.events.length,
      deliveredSeconds: (delivered - burstStart.at) / 1000,
      allEventsExistSeconds: (allExist - burstStart.at) / 1000,
      mirrorLagSeconds: (mirrored - burstStart.at) / 1000,
      peakMirrorLagMetric: peakMirrorLag,
      rss: { beforeApply: beforeApply.rss, peakApply: peakApplyRss, peak: rss.hwm(), settled: settled.rss },
      heap: {
        beforeApply: beforeApply.heap,
        maxUsed: sampler.max("heapUsedMiB"),
        maxTotal: sampler.max("heapTotalMiB"),
        settled: settled.heap,
      },
      userAgents: audit.operatorUserAgents,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch((error: unknown) => log(String(error)));
    if (!process.env.BENCH_KEEP_AUDIT) await rm(auditLog, { force: true });
  }
}

// ── the cluster's contents ──────────────────────────────────────────────────────────────────────

/**
 * One line per request, when the API server receives it (a watch counts once, however long it
 * lasts); the API server's own loopback requests left out.
 */
const AUDIT_POLICY = stringify({
  apiVersion: "audit.k8s.io/v1",
  kind: "Policy",
  omitStages: ["ResponseStarted", "ResponseComplete", "Panic"],
  rules: [{ level: "None", users: ["system:apiserver"] }, { level: "Metadata" }],
});

function integration(namespace: string, perNamespace: number): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: "WebhookIntegration",
    metadata: { name: "default", namespace },
    spec: {
      enabled: true,
      destinationPolicy: { allowPlainHTTP: true },
      // retention by count must keep every WebhookEvent of the burst (the default keeps 1,000)
      eventLog: { maxEvents: Math.min(100_000, Math.max(1_000, 2 * perNamespace, 2 * BURST_DELIVERIES)) },
    },
  };
}

/** The i-th Webhook of a namespace: the event types in turn, each its own path on the receiver. */
function webhook(namespace: string, i: number, receiverPort: number): Record<string, unknown> {
  const name = `hook-${String(i).padStart(5, "0")}`;
  return {
    apiVersion: API_VERSION,
    kind: "Webhook",
    metadata: { name, namespace },
    spec: { event: eventTypeOf(i), url: `http://127.0.0.1:${receiverPort}/${namespace}/${name}` },
  };
}

function eventTypeOf(i: number): EventType {
  return EVENT_TYPES[i % EVENT_TYPES.length]!;
}

/**
 * Events whose fan-out comes closest to `target` deliveries: one event per (namespace, event
 * type), every namespace's webhooks of the first type, then of the next.
 */
function burstEvents(
  namespaces: readonly string[],
  perNamespace: number,
  target: number,
  tag: string,
): {
  events: Array<{ type: EventType; namespace: string; id: string; data: Record<string, unknown> }>;
  deliveries: number;
} {
  const subscribers = (type: number) =>
    Math.floor(perNamespace / EVENT_TYPES.length) + (type < perNamespace % EVENT_TYPES.length ? 1 : 0);
  const chosen: Array<{ namespace: string; type: number; count: number }> = [];
  let total = 0;
  outer: for (let type = 0; type < EVENT_TYPES.length; type++) {
    for (const namespace of namespaces) {
      const count = subscribers(type);
      if (count === 0) continue;
      if (total + count > target && target - total < total + count - target) break outer;
      chosen.push({ namespace, type, count });
      total += count;
      if (total >= target) break outer;
    }
  }
  return {
    deliveries: total,
    events: chosen.map(({ namespace, type }, i) => ({
      type: EVENT_TYPES[type]!,
      namespace,
      id: `${tag}-burst-${i}`,
      data: { id: `${tag}-${i}`, source: "operator-bench" },
    })),
  };
}

/** `kubectl apply --server-side -f` of `objects` written to `file` as one multi-document YAML. */
async function kubectlApply(
  kubectlBin: string,
  controlPlane: ControlPlane,
  file: string,
  objects: readonly Record<string, unknown>[],
): Promise<void> {
  await writeFile(file, objects.map((object) => stringify(object)).join("---\n"));
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      kubectlBin,
      ["--kubeconfig", controlPlane.kubeconfigPath, "apply", "--server-side", "-f", file],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`kubectl apply exited ${code}: ${stderr.slice(-2000)}`)),
    );
  });
}

// ── readings ────────────────────────────────────────────────────────────────────────────────────

interface KubeObject {
  metadata: { name: string; generation?: number; labels?: Record<string, string> };
  status?: {
    observedGeneration?: number;
    conditions?: Array<{ type: string; status: string; observedGeneration?: number }>;
  };
}

/** Ready=True, for the object's current generation. */
function isReady(object: KubeObject): boolean {
  const generation = object.metadata.generation;
  const ready = object.status?.conditions?.find((condition) => condition.type === "Ready");
  return (
    ready?.status === "True" &&
    object.status?.observedGeneration === generation &&
    (ready.observedGeneration === undefined || ready.observedGeneration === generation)
  );
}

/** The namespaces whose `plural` are not all Ready (or fewer than `expected`): a list each, 4 at a time. */
async function notReady(
  api: AdminClient,
  namespaces: readonly string[],
  plural: string,
  expected = 1,
): Promise<string[]> {
  const pending: string[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < namespaces.length; i = next++) {
      const namespace = namespaces[i]!;
      // resourceVersion=0: served from the API server's watch cache, not etcd
      const list = JSON.parse(
        await api.get(`${GROUP_PATH}/namespaces/${namespace}/${plural}?resourceVersion=0`),
      ) as { items: KubeObject[] | null };
      const items = list.items ?? [];
      if (items.length < expected || !items.every(isReady)) pending.push(namespace);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return pending;
}

/** WebhookEvents by their phase label: one metadata-only list. */
async function eventPhases(api: AdminClient): Promise<{ total: number; byPhase: Map<string, number> }> {
  const list = JSON.parse(
    await api.get(
      `${GROUP_PATH}/webhookevents?resourceVersion=0`,
      "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    ),
  ) as { items: KubeObject[] | null }; // null while there is none
  const items = list.items ?? [];
  const byPhase = new Map<string, number>();
  for (const item of items) {
    const phase = item.metadata.labels?.[LABEL_PHASE] ?? "none";
    byPhase.set(phase, (byPhase.get(phase) ?? 0) + 1);
  }
  return { total: items.length, byPhase };
}

/** Webhooks in the routing documents (the stored JSON: only secrets and header values are sealed). */
async function routedWebhooks(redis: Redis, keys: Keyspace): Promise<number> {
  let count = 0;
  for (const json of await redis.hvals(keys.routing)) {
    count += (JSON.parse(json) as { webhooks?: unknown[] }).webhooks?.length ?? 0;
  }
  return count;
}

async function routingSizes(redis: Redis, keys: Keyspace): Promise<{ total: number; largest: number }> {
  const sizes = (await redis.hvals(keys.routing)).map((json) => Buffer.byteLength(json));
  return { total: sizes.reduce((a, b) => a + b, 0), largest: Math.max(0, ...sizes) };
}

/** kube-apiserver's and etcd's PIDs (for their CPU time), found by their flags naming the control plane's dir. */
function controlPlanePids(controlPlane: ControlPlane): { apiserver: number[]; etcd: number[] } {
  const found = { apiserver: [] as number[], etcd: [] as number[] };
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmdline.includes(`--cert-dir=${controlPlane.dir}\0`)) found.apiserver.push(Number(entry));
    else if (cmdline.includes(`--data-dir=${join(controlPlane.dir, "etcd-data")}\0`))
      found.etcd.push(Number(entry));
  }
  return found;
}

interface Snapshot {
  at: number;
  metrics: string;
  routingRevision: number;
  cpu: Record<string, number>;
}

async function snapshot(
  operator: BenchOperator,
  redis: Redis,
  keys: Keyspace,
  pids: { apiserver: number[]; etcd: number[] },
): Promise<Snapshot> {
  const at = Date.now();
  const [metrics, revision] = await Promise.all([operator.metrics(), redis.get(keys.routingRevision)]);
  return {
    at,
    metrics,
    routingRevision: Number(revision ?? 0),
    cpu: cpuSeconds({ operator: operator.pid, apiserver: pids.apiserver, etcd: pids.etcd }),
  };
}

function difference(from: Snapshot, to: Snapshot): PhaseCounts {
  const reconciles = new Map<string, number>();
  for (const controller of labelValues(to.metrics, "controller_runtime_reconcile_total", "controller")) {
    const count = (text: string) => metric(text, "controller_runtime_reconcile_total", { controller });
    reconciles.set(controller, count(to.metrics) - count(from.metrics));
  }
  const writes = (text: string) => metric(text, "dataforce_operator_api_writes_total");
  return {
    reconciles,
    routingWrites: to.routingRevision - from.routingRevision,
    operatorWrites: writes(to.metrics) - writes(from.metrics),
    operatorCpuSeconds: to.cpu.operator! - from.cpu.operator!,
    apiServerCpuSeconds: to.cpu.apiserver! - from.cpu.apiserver!,
    etcdCpuSeconds: to.cpu.etcd! - from.cpu.etcd!,
  };
}

/** The operator's /metrics every second: V8 heap and the integration controller's reconciles. */
class MetricsSampler {
  private readonly samples: Array<{
    at: number;
    integrationReconciles: number;
    heapUsedMiB: number;
    heapTotalMiB: number;
  }> = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(operator: BenchOperator) {
    this.loop = (async () => {
      while (this.running) {
        const started = Date.now();
        try {
          const text = await operator.metrics();
          this.samples.push({
            at: started,
            integrationReconciles: integrationReconciles(text),
            heapUsedMiB: metric(text, "nodejs_heap_size_used_bytes") / MiB,
            heapTotalMiB: metric(text, "nodejs_heap_size_total_bytes") / MiB,
          });
        } catch {
          // not listening yet, or gone
        }
        await sleep(Math.max(0, 1_000 - (Date.now() - started)));
      }
    })();
  }

  max(field: "heapUsedMiB" | "heapTotalMiB"): number {
    return Math.max(...this.samples.map((sample) => sample[field]));
  }

  /** The most integration reconciles per second in any 5 s between `start` and `end`. */
  busiestIntegrationRate(start: number, end: number): number {
    const window = this.samples.filter((sample) => sample.at >= start - 1_000 && sample.at <= end + 1_000);
    let peak = 0;
    for (let i = 0, j = 0; i < window.length; i++) {
      while (j < window.length && window[j]!.at - window[i]!.at < 5_000) j++;
      if (j === window.length) break;
      const a = window[i]!;
      const b = window[j]!;
      peak = Math.max(peak, (b.integrationReconciles - a.integrationReconciles) / ((b.at - a.at) / 1000));
    }
    return peak;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

function integrationReconciles(metrics: string): number {
  return metric(metrics, "controller_runtime_reconcile_total", { controller: "webhookintegration" });
}

async function heapUsedNow(operator: BenchOperator): Promise<number> {
  return metric(await operator.metrics(), "nodejs_heap_size_used_bytes") / MiB;
}

/** The operator's requests per window (apply, burst), from the API server's audit log. */
async function auditRequests(
  file: string,
  windows: readonly Window[],
): Promise<{ windows: Requests[]; operatorUserAgents: string[] }> {
  const counts: Requests[] = windows.map(() => ({
    byVerb: new Map(),
    byResource: new Map(),
    kubectl: 0,
    bench: 0,
  }));
  const userAgents = new Set<string>();
  const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    if (line === "") continue;
    const event = JSON.parse(line) as {
      stage: string;
      verb: string;
      userAgent?: string;
      user?: { username?: string };
      requestURI: string;
      requestReceivedTimestamp: string;
      objectRef?: { resource?: string; subresource?: string };
    };
    if (event.stage !== "RequestReceived" || event.user?.username === "system:apiserver") continue;
    const at = Date.parse(event.requestReceivedTimestamp);
    const index = windows.findIndex((w) => at >= w.start && at <= w.end);
    if (index < 0) continue;
    const count = counts[index]!;
    const agent = event.userAgent ?? "";
    if (agent.startsWith("kubectl/")) count.kubectl++;
    else if (agent === BENCH_USER_AGENT) count.bench++;
    else {
      userAgents.add(agent);
      add(count.byVerb, event.verb);
      const resource = event.objectRef?.resource
        ? `${event.objectRef.resource}${event.objectRef.subresource ? `/${event.objectRef.subresource}` : ""}`
        : event.requestURI.split("?")[0]!;
      add(count.byResource, `${event.verb} ${resource}`);
    }
  }
  return { windows: counts, operatorUserAgents: [...userAgents].sort() };
}

// ── waits and processes ─────────────────────────────────────────────────────────────────────────

/** Polls `check` until yes, failing at once if the operator exits; errors are logged (every 10 s at most) and retried. */
async function waitFor(
  operator: BenchOperator,
  what: string,
  check: () => Promise<boolean>,
  intervalMs = 1_000,
): Promise<void> {
  let lastLogged = 0;
  await untilAlive(
    operator.proc,
    operator.logFile,
    async () => {
      try {
        return await check();
      } catch (error) {
        if (Date.now() - lastLogged > 10_000) {
          lastLogged = Date.now();
          log(`waiting for ${what}: ${error instanceof Error ? error.message : String(error)}`);
        }
        return false;
      }
    },
    what,
    { intervalMs, deadlineMs: WAIT_MS },
  );
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

// ── the report ──────────────────────────────────────────────────────────────────────────────────

const n = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "–");
const s1 = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : "–");
const s2 = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : "–");

/** `list 3 · watch 5 · patch 1,000`, largest first. */
function counted(map: ReadonlyMap<string, number>): string {
  const entries = [...map].filter(([, count]) => count > 0).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? "none" : entries.map(([key, count]) => `${key} ${n(count)}`).join(" · ");
}

/** Writes of WebhookEvents (and their status): what the operator's API budget meters. */
function eventWrites(requests: Requests): number {
  let count = 0;
  for (const [key, value] of requests.byResource) {
    const [verb, resource] = key.split(" ");
    if (resource?.startsWith("webhookevents") && ["create", "patch", "update", "delete"].includes(verb!))
      count += value;
  }
  return count;
}

function total(map: ReadonlyMap<string, number>): number {
  return [...map.values()].reduce((a, b) => a + b, 0);
}

/** Reconciles per object: webhook per Webhook, webhookintegration per namespace, others per WebhookEvent. */
function perObject(reconciles: ReadonlyMap<string, number>, r: ScenarioResult, events: number): string {
  const objects = (controller: string) =>
    controller === "webhook"
      ? r.webhooks
      : controller === "webhookintegration"
        ? r.scenario.namespaces
        : events;
  const noun = (controller: string) =>
    controller === "webhook"
      ? "Webhook"
      : controller === "webhookintegration"
        ? "integration"
        : "WebhookEvent";
  return [...reconciles]
    .map(([controller, count]) =>
      objects(controller) > 0
        ? `${controller} ${s2(count / objects(controller))}/${noun(controller)} (${n(count)})`
        : `${controller} ${n(count)}`,
    )
    .join(" · ");
}

function printScenario(r: ScenarioResult): void {
  const { apply, burst } = r;
  const rows: Array<[string, string]> = [
    [
      "Webhooks",
      `${n(r.webhooks)} in ${r.scenario.namespaces} namespace(s), ${n(r.scenario.perNamespace)} each`,
    ],
    ["kubectl apply --server-side (one YAML) took", `${s1(r.applySeconds)} s`],
    ["apply returned → routing in Redis holds every Webhook", `${s1(r.routingAfterApplySeconds)} s`],
    [
      "**apply returned → every Webhook Ready** (observedGeneration current)",
      `**${s1(r.readyAfterApplySeconds)} s** (${n(r.readyPolls)} polls)`,
    ],
    ["apply started → operator settled (queues empty)", `${s1(r.applySettledSeconds)} s`],
    ["reconciles per object (apply → settled)", perObject(apply.reconciles, r, 0)],
    [
      "**integration reconciles per second of apply activity** (apply start → all Ready)",
      `**${s2(r.integrationRate.mean)}/s** over ${s1(r.integrationRate.seconds)} s; busiest 5 s: ${s2(r.integrationRate.peak)}/s`,
    ],
    [
      "routing writes (apply → settled; Redis routing revision)",
      `${n(apply.routingWrites)}; documents now ${n(r.routingBytes.total / 1024)} KiB, largest ${n(r.routingBytes.largest / 1024)} KiB`,
    ],
    [
      "operator API requests by verb (apply → settled; audit log)",
      `${n(total(apply.requests!.byVerb))}: ${counted(apply.requests!.byVerb)}`,
    ],
    ["… by resource", counted(apply.requests!.byResource)],
    [
      "… writes by the operator's own counter; kubectl's and this bench's requests",
      `${n(apply.operatorWrites)}; kubectl ${n(apply.requests!.kubectl)}, bench ${n(apply.requests!.bench)}`,
    ],
    [
      "CPU s (apply → settled): operator / kube-apiserver / etcd",
      `${s1(apply.operatorCpuSeconds)} / ${s1(apply.apiServerCpuSeconds)} / ${s1(apply.etcdCpuSeconds)}`,
    ],
    ["burst", `${n(r.burstEvents)} events → ${n(r.deliveries)} deliveries`],
    ["burst → all delivered (dispatcher: SENT)", `${s1(r.deliveredSeconds)} s`],
    ["burst → every WebhookEvent exists", `${s1(r.allEventsExistSeconds)} s`],
    [
      "**WebhookEvent mirror lag**: burst → every WebhookEvent SENT",
      `**${s1(r.mirrorLagSeconds)} s** (dataforce_operator_mirror_lag_seconds peaked at ${s1(r.peakMirrorLagMetric)} s)`,
    ],
    [
      "… of which the WebhookEvent write budget alone needs",
      `≥ ${s1(Math.max(0, eventWrites(burst.requests!) - API_BURST) / API_QPS)} s: ${n(eventWrites(burst.requests!))} WebhookEvent writes at OPERATOR_API_QPS ${API_QPS} (burst ${API_BURST})`,
    ],
    ["reconciles per object (burst → settled)", perObject(burst.reconciles, r, r.deliveries)],
    ["routing writes (burst → settled)", n(burst.routingWrites)],
    [
      "operator API requests by verb (burst → settled)",
      `${n(total(burst.requests!.byVerb))}: ${counted(burst.requests!.byVerb)}`,
    ],
    ["… by resource", counted(burst.requests!.byResource)],
    ["… writes by the operator's own counter", n(burst.operatorWrites)],
    [
      "CPU s (burst → settled): operator / kube-apiserver / etcd",
      `${s1(burst.operatorCpuSeconds)} / ${s1(burst.apiServerCpuSeconds)} / ${s1(burst.etcdCpuSeconds)}`,
    ],
    [
      `operator RSS MiB: before the apply / **peak** (VmHWM) at all Ready / **peak overall** / **settled** (VmRSS after ${SETTLE_SECONDS} s quiet)`,
      `${n(r.rss.beforeApply)} / **${n(r.rss.peakApply)}** / **${n(r.rss.peak)}** / **${n(r.rss.settled)}**`,
    ],
    [
      "V8 heap used MiB: before the apply / max (1 s samples) / settled; heap total max",
      `${n(r.heap.beforeApply)} / ${n(r.heap.maxUsed)} / ${n(r.heap.settled)}; ${n(r.heap.maxTotal)}`,
    ],
    ["operator's user agents (audit log)", r.userAgents.map((agent) => agent || "(none)").join(", ")],
  ];
  console.log(`\n### operator bench: ${r.scenario.name}\n`);
  console.log("| | |\n| --- | --- |");
  for (const [what, value] of rows) console.log(`| ${what} | ${value} |`);
}

function printTargets(results: readonly ScenarioResult[], failed: readonly string[]): void {
  const find = (name: string) => results.find((r) => r.scenario.name === name);
  const verdict = (ok: boolean | undefined) => (ok === undefined ? "not run" : ok ? "met" : "**missed**");
  const r5k = find("5k");
  const r10k = find("10k");
  const rates = results.map((r) => `${r.scenario.name}: ${s2(r.integrationRate.mean)}/s`).join(", ");
  const rows: Array<[string, string, string]> = [
    [
      `5,000 Webhooks in one namespace all Ready within ${TARGETS.readySeconds5k} s of the apply`,
      r5k
        ? `${s1(r5k.readyAfterApplySeconds)} s after the apply returned (${s1(r5k.applySeconds + r5k.readyAfterApplySeconds)} s from its start)`
        : "–",
      verdict(r5k && r5k.readyAfterApplySeconds <= TARGETS.readySeconds5k),
    ],
    [
      `integration reconciles ≤ ${TARGETS.integrationReconcilesPerSecond} per second of apply activity`,
      rates || "–",
      verdict(
        results.length > 0
          ? results.every((r) => r.integrationRate.mean <= TARGETS.integrationReconcilesPerSecond)
          : undefined,
      ),
    ],
    [
      `peak RSS < ${TARGETS.peakRssMiB10k} MiB, 10,000 Webhooks in 100 namespaces + a 1,000-delivery burst`,
      r10k ? `${n(r10k.rss.peak)} MiB (VmHWM)` : "–",
      verdict(r10k && r10k.rss.peak < TARGETS.peakRssMiB10k),
    ],
    [
      `settled RSS < ${TARGETS.settledRssMiB10k} MiB (10k)`,
      r10k ? `${n(r10k.rss.settled)} MiB (VmRSS ${SETTLE_SECONDS} s after settling)` : "–",
      verdict(r10k && r10k.rss.settled < TARGETS.settledRssMiB10k),
    ],
  ];
  console.log("\n### issue 16 targets\n");
  if (SCALE !== 1) console.log(`BENCH_SCALE=${SCALE}: not the sizes the targets are about.\n`);
  console.log("| target | measured | |\n| --- | --- | --- |");
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
  for (const failure of failed) console.log(`\nfailed: ${failure}`);
  console.log(
    `\nnode ${process.version}, ${cpus().length} CPUs, load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} at the end${NODE_ARGS.length > 0 ? `; operator node flags: ${NODE_ARGS.join(" ")}` : ""}`,
  );
}

runBenchmark(main, SELECTED.length * 60 * 60_000);
