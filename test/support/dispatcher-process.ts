import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../env/ports.ts";
import { type ManagedProcess, startProcess } from "../env/process.ts";
import { ADMIN_TOKEN, INGEST_TOKEN, TEST_ENCRYPTION_KEYS } from "./fixtures.ts";

// A dispatcher as a real process (`node dispatcher/main.ts`), for tests that kill it or run several
// replicas (the fault suite, ordered delivery): fast loops, and unacknowledged work of a dead replica
// claimed after 1 s.

const repo = join(import.meta.dirname, "..", "..");
const NODE = join(repo, "node_modules", ".bin", "node");

export interface DispatcherProcess {
  readonly name: string;
  readonly url: string;
  readonly proc: ManagedProcess;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (graceful), SIGKILL after 5 s. */
  stop(): Promise<void>;
}

export async function startDispatcherProcess(options: {
  name: string;
  redisUrl: string;
  keyTag: string;
  logDir: string;
  env?: Record<string, string>;
}): Promise<DispatcherProcess> {
  const { name } = options;
  const port = await freePort();
  const proc = startProcess(name, NODE, [join(repo, "dispatcher", "main.ts")], {
    logFile: join(options.logDir, `${name}.log`),
    cwd: repo,
    env: {
      ...process.env,
      DISPATCHER_REDIS_URL: options.redisUrl,
      DISPATCHER_KEY_TAG: options.keyTag,
      DISPATCHER_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      DISPATCHER_HOST: "127.0.0.1",
      DISPATCHER_PORT: String(port),
      DISPATCHER_INGEST_TOKENS: INGEST_TOKEN,
      DISPATCHER_ADMIN_TOKENS: ADMIN_TOKEN,
      DISPATCHER_ALLOWED_DESTINATIONS: "127.0.0.1",
      DISPATCHER_CONSUMER_NAME: name,
      DISPATCHER_CLAIM_IDLE_MS: "1000",
      DISPATCHER_SCHEDULER_TICK_MS: "20",
      DISPATCHER_ROUTING_POLL_MS: "200",
      DISPATCHER_MAINTENANCE_INTERVAL_MS: "1000",
      DISPATCHER_SHUTDOWN_GRACE_MS: "2000",
      DISPATCHER_LOG_LEVEL: "info",
      ...options.env,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`${name} exited with ${proc.child.exitCode}`);
    const status = await fetch(`${url}/readyz`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) break;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`${name} not ready within 20 s (see ${options.logDir}/${name}.log)`);
    }
    await sleep(100);
  }
  return {
    name,
    url,
    proc,
    async kill() {
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        const exited = new Promise((resolve) => proc.child.once("exit", resolve));
        proc.child.kill("SIGKILL");
        await exited;
      }
      await proc.stop();
    },
    stop: () => proc.stop(5_000),
  };
}
