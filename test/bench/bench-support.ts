import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { bundleProcesses, RUNTIME_ENV } from "../../build/bundle.ts";
import type { Keyspace } from "../../contract/keys.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { freePort } from "../env/ports.ts";
import { TEST_ENCRYPTION_KEYS, TEST_SECRET_BOX } from "../support/fixtures.ts";

// What the benchmark scripts share: their child processes (stopped however the run ends), a
// watchdog, the bench receiver, timing and /proc readings.

const started = Date.now();
const processes: ChildProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];
let stopping = false;

/** Runs `cleanup` when the benchmark ends (after its child processes are stopped). */
export function onStop(cleanup: () => Promise<void>): void {
  cleanups.push(cleanup);
}

/** Runs a benchmark's `main`, stops everything it started, and exits 0, 1 (failed) or 2 (over `deadlineMs`). */
export function runBenchmark(main: () => Promise<void>, deadlineMs: number): void {
  const watchdog = setTimeout(() => {
    console.error(`benchmark exceeded ${deadlineMs} ms; stopping`);
    void stopAll().finally(() => process.exit(2));
  }, deadlineMs);
  watchdog.unref();
  main().then(
    async () => {
      await stopAll();
      process.exit(0);
    },
    async (error: unknown) => {
      console.error(error);
      await stopAll();
      process.exit(1);
    },
  );
}

async function stopAll(): Promise<void> {
  stopping = true;
  await Promise.all(
    processes.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill("SIGTERM");
        }),
    ),
  );
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
}

export function spawnProcess(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  stdout: "pipe" | "inherit" = "inherit",
): ChildProcess {
  const child = spawn(command, args, { env, stdio: ["ignore", stdout, "inherit"] });
  processes.push(child);
  child.once("exit", (code, signal) => {
    if (code !== 0 && signal !== "SIGTERM" && !stopping)
      log(`${name} exited unexpectedly (${code ?? signal})`);
  });
  return child;
}

export async function spawnReceiver(): Promise<[port: number, pid: number]> {
  const child = spawnProcess(
    "receiver",
    process.execPath,
    ["test/bench/bench-receiver.ts"],
    process.env,
    "pipe",
  );
  return await new Promise<[number, number]>((resolve, reject) => {
    child.stdout!.once("data", (chunk: Buffer) => resolve([Number(chunk.toString().trim()), child.pid!]));
    child.once("exit", (code) => reject(new Error(`receiver exited with ${code}`)));
  });
}

export async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  pollMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/** CPU time of processes (summed per name), seconds: all of it, and the part spent in the kernel. */
export interface CpuTime {
  total: number;
  kernel: number;
}

/** utime + stime (and stime alone) of processes, summed per name, from /proc. */
export function cpuTimes(pids: Record<string, number | readonly number[]>): Record<string, CpuTime> {
  const ticksPerSecond = 100; // USER_HZ on Linux
  const result: Record<string, CpuTime> = {};
  for (const [name, pidOrPids] of Object.entries(pids)) {
    const time = { total: 0, kernel: 0 };
    for (const pid of typeof pidOrPids === "number" ? [pidOrPids] : pidOrPids) {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      time.total += (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
      time.kernel += Number(fields[12]) / ticksPerSecond;
    }
    result[name] = time;
  }
  return result;
}

/** utime + stime of processes (summed per name), seconds. */
export function cpuSeconds(pids: Record<string, number | readonly number[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(cpuTimes(pids)).map(([name, time]) => [name, time.total]));
}

/** "214 µs (kernel 35 %)": CPU per unit of work between two readings. */
export function describeCpu(before: CpuTime, after: CpuTime, units: number): string {
  const total = after.total - before.total;
  const kernel = after.kernel - before.kernel;
  const share = total > 0 ? Math.round((kernel / total) * 100) : 0;
  return `${((total * 1e6) / units).toFixed(0)} µs (kernel ${share} %)`;
}

/** Peak resident set (VmHWM) of a process, KiB. */
export function peakRss(pid: number): number {
  const match = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0);
}

export function pad(text: string): string {
  return text.padEnd(11);
}

export function log(message: string): void {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${message}`);
}

export interface BenchDispatcherOptions {
  redisUrl: string;
  keyTag: string;
  ingestToken: string;
  adminToken: string;
  /** Further DISPATCHER_* settings. */
  env?: Record<string, string>;
  /** Node.js flags (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
}

let dispatcherBundle: Promise<string> | undefined;

/** The dispatcher bundled as the image runs it (build/bundle.ts), once per benchmark run. */
function bundledDispatcher(): Promise<string> {
  dispatcherBundle ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "dataforce-bench-dist-"));
    onStop(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    await bundleProcesses({ outDir: join(dir, "dist"), entries: ["dispatcher/main"] });
    return join(dir, "dist", "dispatcher", "main.js");
  })();
  return dispatcherBundle;
}

/**
 * A dispatcher process on loopback, bundled and run as the image runs it, once its /readyz
 * answers; its base URL and process.
 */
export async function startBenchDispatcher(
  options: BenchDispatcherOptions,
): Promise<{ base: string; process: ChildProcess }> {
  const port = await freePort();
  const child = spawnProcess(
    "dispatcher",
    process.execPath,
    [...(options.nodeArgs ?? []), await bundledDispatcher()],
    {
      ...process.env,
      DISPATCHER_REDIS_URL: options.redisUrl,
      DISPATCHER_KEY_TAG: options.keyTag,
      DISPATCHER_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      DISPATCHER_HOST: "127.0.0.1",
      DISPATCHER_PORT: String(port),
      DISPATCHER_INGEST_TOKENS: options.ingestToken,
      DISPATCHER_ADMIN_TOKENS: options.adminToken,
      DISPATCHER_ALLOWED_DESTINATIONS: "127.0.0.1",
      DISPATCHER_LOG_LEVEL: "warn",
      ...RUNTIME_ENV,
      ...options.env,
    },
  );
  const base = `http://127.0.0.1:${port}`;
  await until(
    async () => (await fetch(`${base}/readyz`).catch(() => null))?.status === 200,
    20_000,
    "dispatcher ready",
  );
  return { base, process: child };
}

/** The namespace of the event log benchmarks (bench:log, bench:archive). */
export const LOG_NAMESPACE = "bench";
/** One event in this many is a `payment.received`, routed to an endpoint that refuses: FAILED. */
export const LOG_FAILING_SHARE = 10;

/**
 * The event log benchmarks' routing: `orders` (job.created) to the receiver, `payments`
 * (payment.received) to a loopback port nothing listens on, refused at its only attempt.
 */
export async function writeLogRouting(
  redis: Redis,
  keys: Keyspace,
  receiverPort: number,
  refusingPort: number,
): Promise<void> {
  await writeNamespaceRouting(
    redis,
    {
      namespace: LOG_NAMESPACE,
      enabled: true,
      signingSecrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
      allowPlainHttp: true,
      delivery: {
        maxAttempts: 1,
        timeoutMs: 2_000,
        backoff: { initialDelayMs: 10, maxDelayMs: 10, multiplier: 1 },
        // FAILED deliveries are the point here: an open circuit would hold them QUEUED for minutes
        circuitBreaker: { consecutiveFailures: 0 },
      },
      webhooks: [
        { name: "orders", event: "job.created", url: `http://127.0.0.1:${receiverPort}/orders` },
        { name: "payments", event: "payment.received", url: `http://127.0.0.1:${refusingPort}/payments` },
      ],
    },
    keys,
    TEST_SECRET_BOX,
  );
}

export interface LogEvent {
  type: "job.created" | "payment.received";
  namespace: string;
  id: string;
  data: { ref: string; status: string };
}

/**
 * `count` events of the log benchmarks (`evt-<i>`, one in LOG_FAILING_SHARE a payment.received)
 * through HTTP ingest, in batches of 500, four at a time; returns them.
 */
export async function ingestLogEvents(base: string, ingestToken: string, count: number): Promise<LogEvent[]> {
  const batchSize = 500;
  const events: LogEvent[] = Array.from({ length: count }, (_, i) => ({
    type: i % LOG_FAILING_SHARE === 0 ? "payment.received" : "job.created",
    namespace: LOG_NAMESPACE,
    id: `evt-${i}`,
    data: { ref: `R-${i}`, status: "created" },
  }));
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < events.length) {
        const batch = events.slice(next, next + batchSize);
        next += batchSize;
        const response = await fetch(`${base}/v1/events/batch`, {
          method: "POST",
          headers: { authorization: `Bearer ${ingestToken}`, "content-type": "application/json" },
          body: JSON.stringify({ events: batch }),
        });
        if (response.status !== 202) throw new Error(`ingest answered ${response.status}`);
      }
    }),
  );
  return events;
}
