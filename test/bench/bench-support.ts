import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

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

/** utime + stime of processes (summed per name), seconds. */
export function cpuSeconds(pids: Record<string, number | readonly number[]>): Record<string, number> {
  const ticksPerSecond = 100; // USER_HZ on Linux
  const result: Record<string, number> = {};
  for (const [name, pidOrPids] of Object.entries(pids)) {
    result[name] = 0;
    for (const pid of typeof pidOrPids === "number" ? [pidOrPids] : pidOrPids) {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      result[name] += (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
    }
  }
  return result;
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
