import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { type ManagedProcess, startProcess } from "./process.ts";
import { startOnFreePort, waitForRedis } from "./redis.ts";

// A Redis Sentinel deployment on loopback, as production runs it in miniature: one primary, one
// replica, three Sentinels (quorum 2). Everything is Debian's redis-server: a Sentinel is the same
// binary started with `--sentinel` on a config file it may rewrite.

export interface SentinelGroupOptions {
  /** How long a primary must be unreachable before a Sentinel deems it down. */
  downAfterMs?: number;
  /** Sentinel's failover-timeout (also the pause before it retries a failed failover). */
  failoverTimeoutMs?: number;
}

export interface Failover {
  /** Port of the primary that was killed, and when (epoch ms). */
  readonly killedPort: number;
  readonly killedAt: number;
  /** Port of the promoted replica, and when a quorum of Sentinels named it and it took writes. */
  readonly promotedPort: number;
  readonly promotedAt: number;
}

export interface SentinelGroup {
  readonly masterName: string;
  /** `host:port,…` of the Sentinels, in the form `*_REDIS_SENTINELS` takes. */
  readonly sentinels: string;
  readonly dir: string;
  /** The primary's port, as the Sentinels name it now. */
  primaryPort(): Promise<number>;
  /**
   * SIGKILLs the current primary (no shutdown, no last words to its replica) and resolves once the
   * Sentinels have promoted the replica and it accepts writes.
   */
  failover(timeoutMs?: number): Promise<Failover>;
  /** Client connections subscribed to a channel, over all Sentinels (clients' failover detectors). */
  sentinelSubscribers(): Promise<number>;
  stop(): Promise<void>;
}

const MASTER_NAME = "mymaster";
const QUORUM = 2;
const SENTINELS = 3;

interface Server {
  readonly port: number;
  readonly proc: ManagedProcess;
}

/** Starts the primary, its replica and three Sentinels, and waits until a failover could happen. */
export async function startSentinelGroup(options: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const downAfterMs = options.downAfterMs ?? 1_000;
  const failoverTimeoutMs = options.failoverTimeoutMs ?? 5_000;
  const dir = await mkdtemp(join(tmpdir(), "dataforce-sentinel-"));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  const servers: Server[] = [];
  const stopAll = async () => {
    await Promise.all(servers.map((server) => server.proc.stop(1_000)));
  };

  try {
    const primary = await startServer(dir, "primary", (port) => redisArgs(dir, "primary", port));
    servers.push(primary);
    const replica = await startServer(dir, "replica", (port) => [
      ...redisArgs(dir, "replica", port),
      "--replicaof",
      "127.0.0.1",
      String(primary.port),
    ]);
    servers.push(replica);
    await until(10_000, "the replica to sync", async () => {
      const info = await command(primary.port, (client) => client.info("replication"));
      return /slave0:.*state=online/.test(info ?? "");
    });

    const sentinels: Server[] = [];
    for (let i = 0; i < SENTINELS; i++) {
      const name = `sentinel-${i}`;
      const sentinel = await startServer(dir, name, async (port) => {
        // Sentinel rewrites its config file (discovered replicas and peers, epochs): one each
        const config = join(dir, name, "sentinel.conf");
        await writeFile(
          config,
          [
            `port ${port}`,
            "bind 127.0.0.1",
            `dir ${join(dir, name)}`,
            `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primary.port} ${QUORUM}`,
            `sentinel down-after-milliseconds ${MASTER_NAME} ${downAfterMs}`,
            `sentinel failover-timeout ${MASTER_NAME} ${failoverTimeoutMs}`,
            `sentinel parallel-syncs ${MASTER_NAME} 1`,
            "",
          ].join("\n"),
        );
        return [config, "--sentinel"];
      });
      servers.push(sentinel);
      sentinels.push(sentinel);
    }
    // A failover needs every Sentinel to know the replica (from the primary's INFO) and its peers
    // (from hello messages, every 2 s): wait for both, or the first failover may not happen.
    await until(20_000, "the Sentinels to know the replica and each other", async () => {
      for (const sentinel of sentinels) {
        const master = await command(sentinel.port, (client) =>
          client.call("SENTINEL", "MASTER", MASTER_NAME),
        );
        const fields = pairs(master);
        if (fields["num-slaves"] !== "1" || fields["num-other-sentinels"] !== String(SENTINELS - 1)) {
          return false;
        }
      }
      return true;
    });

    const sentinelAddresses = sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(",");
    const byPort = new Map(servers.map((server) => [server.port, server]));

    /** The primary's port according to each Sentinel that answers. */
    const primaryPorts = async (): Promise<number[]> => {
      const replies = await Promise.all(
        sentinels.map((sentinel) =>
          command(sentinel.port, (client) => client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)),
        ),
      );
      return replies.flatMap((reply) => (Array.isArray(reply) ? [Number(reply[1])] : []));
    };

    const primaryPort = async (): Promise<number> => {
      const [port] = await primaryPorts();
      if (port === undefined) throw new Error("no Sentinel answered");
      return port;
    };

    return {
      masterName: MASTER_NAME,
      sentinels: sentinelAddresses,
      dir,
      primaryPort,
      async failover(timeoutMs = 20_000) {
        const killedPort = await primaryPort();
        const victim = byPort.get(killedPort);
        if (!victim) throw new Error(`the primary ${killedPort} is not one of this group's servers`);
        const exited = new Promise((resolve) => victim.proc.child.once("exit", resolve));
        victim.proc.child.kill("SIGKILL");
        const killedAt = Date.now();
        await exited;
        const promotedPort = await until(timeoutMs, "a replica to be promoted", async () => {
          const ports = (await primaryPorts()).filter((port) => port !== killedPort);
          const candidate = ports[0];
          if (candidate === undefined || ports.filter((port) => port === candidate).length < QUORUM) {
            return undefined;
          }
          const role = await command(candidate, (client) => client.call("ROLE"));
          return Array.isArray(role) && role[0] === "master" ? candidate : undefined;
        });
        return { killedPort, killedAt, promotedPort, promotedAt: Date.now() };
      },
      async sentinelSubscribers() {
        const lists = await Promise.all(
          sentinels.map((sentinel) => command(sentinel.port, (client) => client.call("CLIENT", "LIST"))),
        );
        // a Sentinel's own links to its peers never subscribe; clients watching +switch-master do
        let subscribers = 0;
        for (const list of lists) {
          subscribers += String(list ?? "")
            .split("\n")
            .filter((line) => /\bsub=[1-9]/.test(line)).length;
        }
        return subscribers;
      },
      async stop() {
        await stopAll();
        process.removeListener("exit", removeDir);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

function redisArgs(dir: string, name: string, port: number): string[] {
  // no persistence: the killed primary is never restarted (it would come back empty)
  return [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    join(dir, name),
    "--save",
    "",
    "--appendonly",
    "no",
  ];
}

/** Starts one server in `dir/name` on a free port, retrying with another port if it cannot listen. */
async function startServer(
  dir: string,
  name: string,
  args: (port: number) => string[] | Promise<string[]>,
): Promise<Server> {
  await mkdir(join(dir, name), { recursive: true });
  return startOnFreePort(
    `${name} did not start`,
    async (port) =>
      startProcess(name, process.env.REDIS_SERVER_BIN ?? "redis-server", await args(port), {
        logFile: join(dir, name, "redis.log"),
      }),
    (port, proc) => waitForRedis({ host: "127.0.0.1", port }, proc),
  );
}

/** Runs one command on a short-lived connection; undefined when the server does not answer. */
async function command<T>(port: number, run: (client: Redis) => Promise<T>): Promise<T | undefined> {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 500,
    commandTimeout: 500,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return await run(client);
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

/** A flat `[field, value, …]` reply as an object. */
function pairs(reply: unknown): Record<string, string> {
  const fields: Record<string, string> = {};
  if (!Array.isArray(reply)) return fields;
  for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1]);
  return fields;
}

/** Polls every 50 ms until `check` gives something other than false/undefined. */
async function until<T>(
  timeoutMs: number,
  what: string,
  check: () => Promise<T | false | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== false && value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
