/**
 * The operator's end-to-end world: the run's kube-apiserver and Redis, plus per test file
 *  - the CRDs (applied server-side, idempotent),
 *  - an operator namespace holding the operator's ServiceAccount, bound to exactly the
 *    chart's RBAC rules file, and its leader-election Lease,
 *  - the namespaces the file's tests use (the operator watches only those, so files run
 *    side by side without seeing each other),
 *  - a dispatcher process and operator processes on their own Redis key tag.
 * The operator authenticates with a token of that ServiceAccount (TokenRequest API), so a
 * permission missing from the rules file fails a test.
 */

import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { inject } from "vitest";
import { parse, stringify } from "yaml";
import { operatorRbacManifests } from "../chart/operator-rbac.ts";
import { installCrds } from "../env/install-crds.ts";
import { adminKubeconfig, applyYaml, createTestNamespace, kubectl } from "../env/kubectl.ts";
import { freePort } from "../env/ports.ts";
import { type ManagedProcess, startProcess } from "../env/process.ts";
import { TEST_ENCRYPTION_KEYS } from "../support/fixtures.ts";

export const repo = join(import.meta.dirname, "..", "..");
const NODE = join(repo, "node_modules", ".bin", "node");
export const INGEST_TOKEN = "e2e-ingest-token-0123456789abcdef";
export const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef";

/** Short timings, so the suite is as fast as it honestly can be. */
export const FAST_OPERATOR_ENV = {
  OPERATOR_LEASE_DURATION_MS: "3000",
  OPERATOR_RENEW_DEADLINE_MS: "2000",
  OPERATOR_RETRY_PERIOD_MS: "500",
  OPERATOR_RETENTION_INTERVAL_MS: "1000",
  OPERATOR_SHUTDOWN_GRACE_MS: "5000",
  OPERATOR_API_QPS: "200",
  OPERATOR_API_BURST: "100",
  OPERATOR_LOG_LEVEL: "debug",
} as const;

export interface OperatorProcess {
  readonly name: string;
  readonly port: number;
  readonly proc: ManagedProcess;
  metrics(): Promise<string>;
  /** SIGTERM (graceful, releases the Lease) and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL: no goodbye, the Lease has to expire. */
  kill(): Promise<void>;
}

export interface Dispatcher {
  readonly url: string;
  readonly proc: ManagedProcess;
  /** POST /v1/events; returns the response body. */
  publish(event: {
    type: string;
    namespace: string;
    id?: string;
    data: Record<string, unknown>;
  }): Promise<unknown>;
  /** POST /v1/events/batch. */
  publishBatch(
    events: Array<{ type: string; namespace: string; id?: string; data: Record<string, unknown> }>,
  ): Promise<unknown>;
  stop(): Promise<void>;
}

/** One of the two processes, as it should run: its environment (besides the machine's) and log file. */
export interface LaunchSpec {
  readonly role: "dispatcher" | "operator";
  /** Unique within the file (the operator's identity, or "dispatcher"). */
  readonly name: string;
  readonly env: Record<string, string>;
  readonly logFile: string;
}

/** Starts a process of the product (from the sources, or from the image: test/image/). */
export type Launcher = (spec: LaunchSpec) => Promise<ManagedProcess>;

/** The default: node on the TypeScript sources, with the machine's environment. */
export const runFromSources: Launcher = async ({ role, name, env, logFile }) =>
  startProcess(
    role === "dispatcher" ? "dispatcher" : `operator-${name}`,
    NODE,
    [join(repo, role, "main.ts")],
    {
      logFile,
      cwd: repo,
      env: { ...process.env, ...env },
    },
  );

export interface E2eWorld {
  readonly keyTag: string;
  readonly logDir: string;
  readonly operatorNamespace: string;
  /** The file's namespaces, by the short names it asked for. */
  readonly namespaces: Record<string, string>;
  readonly redis: Redis;
  readonly dispatcher: Dispatcher;
  readonly operators: OperatorProcess[];
  /** Starts an operator process (name = its identity) watching the file's namespaces. */
  startOperator(name: string, env?: Record<string, string>): Promise<OperatorProcess>;
  /** Prints the tail of every process log (call from onTestFailed); keeps the logs on disk. */
  printLogs(): Promise<void>;
  /** Stops every process started here and deletes the namespaces (and the logs, unless a test failed). */
  teardown(): Promise<void>;
}

export async function setupWorld(
  file: string,
  namespaceNames: readonly string[],
  options: {
    dispatcherEnv?: Record<string, string>;
    /** A Redis of the file's own instead of the run's (a test that flushes or restarts it). */
    redisUrl?: string;
    /** How the dispatcher and operators run (default: node on the sources, see runFromSources). */
    launch?: Launcher;
  } = {},
): Promise<E2eWorld> {
  const redisUrl = options.redisUrl ?? inject("redisUrl");
  const logDir = await mkdtemp(join(tmpdir(), `dataforce-e2e-${file}-`));
  const keyTag = `e2e-${file}-${randomBytes(3).toString("hex")}`;
  const operatorNs = await createTestNamespace(`${file}-operator`);
  await applyCrds(operatorNs.name);
  const namespaces: Record<string, string> = {};
  const created = [operatorNs];
  for (const short of namespaceNames) {
    const ns = await createTestNamespace(`${file}-${short}`);
    namespaces[short] = ns.name;
    created.push(ns);
  }
  const kubeconfig = await operatorKubeconfig(operatorNs.name, logDir);
  const redis = new Redis(redisUrl);
  const launch = options.launch ?? runFromSources;
  const dispatcher = await startDispatcher(launch, keyTag, logDir, {
    DISPATCHER_REDIS_URL: redisUrl,
    ...options.dispatcherEnv,
  });
  const operators: OperatorProcess[] = [];
  let failed = false;

  const world: E2eWorld = {
    keyTag,
    logDir,
    operatorNamespace: operatorNs.name,
    namespaces,
    redis,
    dispatcher,
    operators,
    async startOperator(name, env = {}) {
      const operator = await startOperator(launch, name, logDir, {
        KUBECONFIG: kubeconfig,
        OPERATOR_REDIS_URL: redisUrl,
        OPERATOR_KEY_TAG: keyTag,
        OPERATOR_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
        OPERATOR_LEASE_NAMESPACE: operatorNs.name,
        OPERATOR_WATCH_NAMESPACES: Object.values(namespaces).join(","),
        ...FAST_OPERATOR_ENV,
        ...env,
      });
      operators.push(operator);
      return operator;
    },
    async printLogs() {
      failed = true;
      for (const name of (await readdir(logDir)).filter((f) => f.endsWith(".log")).sort()) {
        console.log(`--- ${join(logDir, name)} (tail)\n${await tail(join(logDir, name), 30)}`);
      }
    },
    async teardown() {
      await Promise.all(operators.map((o) => o.stop()));
      await dispatcher.stop();
      redis.disconnect();
      await Promise.all(created.map((ns) => ns.delete()));
      if (!failed && !process.env.E2E_KEEP_LOGS) await rm(logDir, { recursive: true, force: true });
    },
  };
  return world;
}

function applyCrds(probeNamespace: string): Promise<void> {
  return installCrds(join(inject("assetsDir"), "kubectl"), adminKubeconfig(), probeNamespace);
}

/** A kubeconfig that authenticates as the operator's ServiceAccount with a TokenRequest token. */
async function operatorKubeconfig(namespace: string, dir: string): Promise<string> {
  const rbac = operatorRbacManifests({ namespace, name: "dataforce-operator" });
  await applyYaml(rbac.yaml);
  const token = (
    await kubectl(["create", "token", rbac.serviceAccount, "-n", namespace, "--duration=2h"])
  ).stdout.trim();
  const admin = parse(await readFile(adminKubeconfig(), "utf8")) as {
    clusters: Array<{ name: string; cluster: Record<string, unknown> }>;
  };
  const cluster = admin.clusters[0]!;
  const path = join(dir, "operator.kubeconfig");
  await writeFile(
    path,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "e2e", cluster: cluster.cluster }],
      users: [{ name: rbac.user, user: { token } }],
      contexts: [{ name: "operator", context: { cluster: "e2e", user: rbac.user } }],
      "current-context": "operator",
    }),
    { mode: 0o600 },
  );
  return path;
}

async function startDispatcher(
  launch: Launcher,
  keyTag: string,
  logDir: string,
  env: Record<string, string>,
): Promise<Dispatcher> {
  const port = await freePort();
  const proc = await launch({
    role: "dispatcher",
    name: "dispatcher",
    logFile: join(logDir, "dispatcher.log"),
    env: {
      DISPATCHER_REDIS_URL: inject("redisUrl"),
      DISPATCHER_KEY_TAG: keyTag,
      DISPATCHER_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      DISPATCHER_HOST: "127.0.0.1",
      DISPATCHER_PORT: String(port),
      DISPATCHER_INGEST_TOKENS: INGEST_TOKEN,
      DISPATCHER_ADMIN_TOKENS: ADMIN_TOKEN,
      DISPATCHER_ALLOWED_DESTINATIONS: "127.0.0.1",
      DISPATCHER_LOG_LEVEL: "info",
      DISPATCHER_ROUTING_POLL_MS: "200",
      DISPATCHER_SCHEDULER_TICK_MS: "20",
      DISPATCHER_CLAIM_IDLE_MS: "2000",
      DISPATCHER_SHUTDOWN_GRACE_MS: "2000",
      // an auto-paused webhook's held deliveries are looked at again every second (30 s by default)
      DISPATCHER_AUTO_PAUSED_RECHECK_MS: "1000",
      ...env,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/readyz`, proc, join(logDir, "dispatcher.log"));
  const post = async (path: string, body: unknown): Promise<unknown> => {
    const response = await fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as unknown;
  };
  return {
    url,
    proc,
    publish: (event) => post("/v1/events", event),
    publishBatch: (events) => post("/v1/events/batch", { events }),
    stop: () => proc.stop(),
  };
}

async function startOperator(
  launch: Launcher,
  name: string,
  logDir: string,
  env: Record<string, string>,
): Promise<OperatorProcess> {
  const port = await freePort();
  const logFile = join(logDir, `operator-${name}.log`);
  const proc = await launch({
    role: "operator",
    name,
    logFile,
    env: { ...env, POD_NAME: name, OPERATOR_HOST: "127.0.0.1", OPERATOR_PORT: String(port) },
  });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/healthz`, proc, logFile);
  return {
    name,
    port,
    proc,
    async metrics() {
      return (await fetch(`${base}/metrics`)).text();
    },
    stop: () => proc.stop(),
    async kill() {
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        const exited = new Promise((resolve) => proc.child.once("exit", resolve));
        proc.child.kill("SIGKILL");
        await exited;
      }
      await proc.stop();
    },
  };
}

async function waitForHttp(
  url: string,
  proc: ManagedProcess,
  logFile: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) {
      throw new Error(`${proc.name} exited with ${proc.child.exitCode}:\n${await tail(logFile)}`);
    }
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${await tail(logFile)}`);
}

export async function tail(file: string, lines = 40): Promise<string> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.trim().split("\n").slice(-lines).join("\n");
}

/** The value of one Prometheus sample (summed over series matching every label given). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const matches = Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`));
    if (matches) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}
