import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";

// On Linux, util-linux's `setpriv` (Essential in Debian) execs the command with a
// parent-death signal, so children die even when this process is SIGKILLed
// (OOM killer, CI timeout) and the exit/signal handlers below never run.
const SETPRIV = "/usr/bin/setpriv";
const useSetpriv = process.platform === "linux" && existsSync(SETPRIV);

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a child process whose output goes to `logFile`. Every process started
 * here is remembered so that an interrupted test run still stops them (by PID),
 * and on Linux it also gets a parent-death signal (see `setpriv` above).
 */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  options: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
): ManagedProcess {
  const log = createWriteStream(options.logFile, { flags: "a" });
  const [file, argv] = useSetpriv
    ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", command, ...args]]
    : [command, [...args]];
  const child = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  running.add(child);
  child.once("exit", () => running.delete(child));

  return {
    name,
    child,
    async stop(graceMs = 5_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
      log.end();
    },
  };
}

const running = new Set<ChildProcess>();

function killAll(): void {
  for (const child of running) child.kill("SIGKILL");
}
process.once("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    // A program with its own handler (make dev) stops its children cleanly itself.
    if (process.listenerCount(signal) > 0) return;
    killAll();
    process.exit(130);
  });
}
