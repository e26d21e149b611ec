import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { bundleProcesses, RUNTIME_ENV } from "../../build/bundle.ts";
import { freePort } from "../env/ports.ts";
import { type ManagedProcess, startProcess } from "../env/process.ts";

// What the operator benchmarks (operator-memory.ts, operator-bench.ts) share: the operator
// bundled and started as the image runs it, its /proc and /metrics readings, an admin client
// of the test control plane, and waits that fail as soon as the operator dies.

export { type AdminClient, adminClient } from "../support/large-webhook-events.ts";
export { heapFlags, procStatus, RssSampler } from "../support/process-memory.ts";

export const repo = join(import.meta.dirname, "..", "..");
export const MiB = 1024 * 1024;

/**
 * The operator bundled as the image runs it (build/bundle.ts), into `dir`, with `extraEntries`
 * (repo-relative .ts files) bundled beside it. Returns the operator bundle and the extra ones, in order.
 */
export async function buildOperator(
  dir: string,
  extraEntries: readonly string[] = [],
): Promise<{ main: string; extra: string[] }> {
  const names = extraEntries.map((entry) => entry.replace(/\.ts$/, ""));
  await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  await bundleProcesses({ outDir: join(dir, "dist"), entries: ["operator/main", ...names] });
  return {
    main: join(dir, "dist", "operator", "main.js"),
    extra: names.map((name) => join(dir, "dist", `${name}.js`)),
  };
}

export interface BenchOperator {
  readonly proc: ManagedProcess;
  readonly pid: number;
  /** http://127.0.0.1:PORT (/metrics, /readyz) */
  readonly base: string;
  readonly logFile: string;
  /** The /metrics text. */
  metrics(): Promise<string>;
}

/**
 * The bundled operator `entry` as the image runs it (RUNTIME_ENV), on a free loopback port, its output in `logFile`.
 */
export async function startBenchOperator(options: {
  /** Its identity (POD_NAME). */
  name: string;
  entry: string;
  logFile: string;
  /** OPERATOR_* settings and KUBECONFIG. */
  env: Record<string, string>;
  nodeArgs?: readonly string[];
}): Promise<BenchOperator> {
  const port = await freePort();
  const proc = startProcess(options.name, process.execPath, [...(options.nodeArgs ?? []), options.entry], {
    logFile: options.logFile,
    cwd: repo,
    env: {
      ...process.env,
      ...options.env,
      ...RUNTIME_ENV,
      POD_NAME: options.name,
      OPERATOR_HOST: "127.0.0.1",
      OPERATOR_PORT: String(port),
    },
  });
  const pid = proc.child.pid;
  if (pid === undefined) throw new Error("the operator did not start");
  const base = `http://127.0.0.1:${port}`;
  return {
    proc,
    pid,
    base,
    logFile: options.logFile,
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
  };
}

// ── memory ──────────────────────────────────────────────────────────────────────────────────────

// ── the control plane ───────────────────────────────────────────────────────────────────────────

// ── waits and metrics ───────────────────────────────────────────────────────────────────────────

/** An error that ends a wait at once (any other is taken for "not yet"). */
export class Fatal extends Error {}

/**
 * Polls `check` (every `intervalMs`) until it says yes; fails when the process exits (with the
 * tail of its log) or after `deadlineMs`.
 */
export async function untilAlive(
  proc: ManagedProcess,
  logFile: string,
  check: () => Promise<boolean>,
  what: string,
  options: { intervalMs?: number; deadlineMs: number },
): Promise<void> {
  const deadline = Date.now() + options.deadlineMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      const tail = (await readFile(logFile, "utf8").catch(() => "")).trim().split("\n").slice(-5).join("\n");
      throw new Error(`exited (${proc.child.signalCode ?? proc.child.exitCode}) before ${what}\n${tail}`);
    }
    try {
      if (await check()) return;
    } catch (error) {
      if (error instanceof Fatal) throw error;
      // not listening yet
    }
    await sleep(options.intervalMs ?? 250);
  }
  throw new Error(`not ${what} within ${options.deadlineMs / 1000} s`);
}

/**
 * Work queues empty and no reconcile counted for 3 polls in a row (a second apart), while
 * leading, and `also` (given the /metrics text; it may throw Fatal) says yes.
 */
export async function untilSettled(
  operator: BenchOperator,
  deadlineMs: number,
  also: (metrics: string) => boolean = () => true,
): Promise<void> {
  let quiet = 0;
  let lastReconciles = -1;
  await untilAlive(
    operator.proc,
    operator.logFile,
    async () => {
      const text = await operator.metrics();
      const reconciles = metric(text, "controller_runtime_reconcile_total");
      const still =
        metric(text, "leader_election_master_status") === 1 &&
        metric(text, "workqueue_depth") === 0 &&
        reconciles === lastReconciles &&
        also(text);
      lastReconciles = reconciles;
      quiet = still ? quiet + 1 : 0;
      return quiet >= 3;
    },
    "settled",
    { intervalMs: 1_000, deadlineMs },
  );
}

/** Throws when the process has exited (`when`: e.g. "during the window"). */
export function assertAlive(proc: ManagedProcess, when: string): void {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
    throw new Error(`exited (${proc.child.signalCode ?? proc.child.exitCode}) ${when}`);
  }
}

/**
 * The sum of a Prometheus metric's samples: every series, or those whose labels include `labels`
 * (`name{a="x",…} value` lines of the text format).
 */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.length > 0) {
      const set = line.slice(name.length + 1, line.lastIndexOf("}"));
      if (!wanted.every((pair) => set.split(",").includes(pair))) continue;
    }
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** The values of `label` on a metric's series (e.g. the controllers of controller_runtime_reconcile_total). */
export function labelValues(text: string, name: string, label: string): string[] {
  const values = new Set<string>();
  const pattern = new RegExp(`^${name}\\{[^}]*\\b${label}="([^"]*)"`, "gm");
  for (const match of text.matchAll(pattern)) values.add(match[1]!);
  return [...values].sort();
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
