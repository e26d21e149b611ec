import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./ports.ts";
import { type ManagedProcess, startProcess } from "./process.ts";

export interface TestRedis {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts Debian's `redis-server` on a free loopback port, in a throwaway directory. */
export async function startRedis(): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), "dataforce-redis-"));
  // If the run ends without stop() (Ctrl-C), process.ts kills redis-server; then the files go.
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = startProcess(
      "redis-server",
      process.env.REDIS_SERVER_BIN ?? "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
      { logFile: join(dir, "redis.log") },
    );
    try {
      await waitForRedis(port, proc);
      const url = `redis://127.0.0.1:${port}`;
      return {
        url,
        port,
        async stop() {
          await proc.stop();
          process.removeListener("exit", removeDir);
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      lastError = error;
      await proc.stop();
    }
  }
  throw new Error(`redis-server did not start (is Debian's redis-server installed?): ${String(lastError)}`);
}

async function waitForRedis(port: number, proc: ManagedProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`redis-server exited with ${proc.child.exitCode}`);
    const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
    client.on("error", () => {});
    try {
      await client.connect();
      if ((await client.ping()) === "PONG") return;
    } catch {
      // not listening yet
    } finally {
      client.disconnect();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("redis-server did not answer PING within 10s");
}
