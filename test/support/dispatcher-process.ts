import { join } from "node:path";
import { inject } from "vitest";
import { freePort } from "../env/ports.ts";
import { type ManagedProcess, startProcess } from "../env/process.ts";
import { ADMIN_TOKEN, eventually, INGEST_TOKEN, TEST_ENCRYPTION_KEYS } from "./fixtures.ts";

// Dispatchers as real processes (`node dispatcher/main.ts`) on 127.0.0.1, for tests that kill
// them (`kill -9`) or run several replicas: each on a free port, logging to its own file.

export interface DispatcherProcess {
  process: ManagedProcess;
  /** its HTTP API, `http://127.0.0.1:<port>` */
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts one on the run's Redis under `keyTag`, and waits until it is ready. */
export async function spawnDispatcher(
  keyTag: string,
  name: string,
  options: { logDir: string; env?: Record<string, string> },
): Promise<DispatcherProcess> {
  const port = await freePort();
  const child = startProcess(name, process.execPath, ["dispatcher/main.ts"], {
    logFile: join(options.logDir, `${name}.log`),
    env: {
      ...process.env,
      DISPATCHER_REDIS_URL: inject("redisUrl"),
      DISPATCHER_KEY_TAG: keyTag,
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
      DISPATCHER_LOG_LEVEL: "info",
      ...options.env,
    },
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await eventually(
      async () => {
        if (child.child.exitCode !== null) throw new Error(`${name} exited with ${child.child.exitCode}`);
        const response = await fetch(`${url}/readyz`).catch(() => null);
        return response?.status === 200 ? true : undefined;
      },
      30_000,
      `${name} to be ready`,
    );
  } catch (error) {
    await child.stop(1_000);
    throw error;
  }
  return { process: child, url, exited };
}
