import { execFile } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { Cluster, Redis } from "ioredis";
import { type ManagedProcess, startProcess } from "./process.ts";
import { startOnFreePort, waitForRedis } from "./redis.ts";

// A Redis Cluster on loopback: `masters` redis-server processes in cluster mode, no replicas,
// joined by `redis-cli --cluster create` (which splits the 16384 slots evenly among them).

const run = promisify(execFile);
const REDIS_CLI = process.env.REDIS_CLI_BIN ?? "redis-cli";

export interface TestRedisCluster {
  /** `host:port,…` of every master, in the form `*_REDIS_CLUSTER_NODES` takes. */
  readonly nodes: string;
  readonly ports: readonly number[];
  readonly dir: string;
  /** A Cluster client (admin). */
  connect(): Cluster;
  /** The port of the master that serves a slot now. */
  ownerOf(slot: number): Promise<number>;
  /**
   * Moves one slot, with its keys, to the master on `toPort` as `redis-cli --cluster reshard` does:
   * IMPORTING/MIGRATING, MIGRATE of the keys in batches of `pipeline`, then SETSLOT NODE on all.
   * `pauseMs` between batches stretches the migration (keys of the slot on both masters meanwhile).
   * Resolves with how many keys moved.
   */
  migrateSlot(slot: number, toPort: number, pipeline?: number, pauseMs?: number): Promise<number>;
  stop(): Promise<void>;
}

export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), "dataforce-redis-cluster-"));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  const procs: ManagedProcess[] = [];
  const ports: number[] = [];
  const stopAll = async () => {
    await Promise.all(procs.map((proc) => proc.stop(1_000)));
    process.removeListener("exit", removeDir);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const { port, proc } = await startNode(dir, i);
      procs.push(proc);
      ports.push(port);
    }
    const addresses = ports.map((port) => `127.0.0.1:${port}`);
    await run(REDIS_CLI, ["--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"], {
      timeout: 30_000,
    });
    await until(20_000, "the cluster to be ok on every node", async () => {
      for (const port of ports) {
        const info = await command(port, (client) => client.cluster("INFO"));
        if (!String(info).includes("cluster_state:ok")) return false;
      }
      return true;
    });
  } catch (error) {
    await stopAll();
    throw error;
  }

  const nodeIds = new Map<number, string>();
  for (const port of ports)
    nodeIds.set(port, String(await command(port, (client) => client.cluster("MYID"))));

  return {
    nodes: ports.map((port) => `127.0.0.1:${port}`).join(","),
    ports,
    dir,
    connect: () => new Cluster(ports.map((port) => ({ host: "127.0.0.1", port }))),
    ownerOf: (slot) => ownerOf(ports, slot),
    async migrateSlot(slot, toPort, pipeline = 10, pauseMs = 0) {
      const fromPort = await ownerOf(ports, slot);
      if (fromPort === toPort) return 0;
      const from = nodeIds.get(fromPort)!;
      const to = nodeIds.get(toPort)!;
      const source = new Redis({ host: "127.0.0.1", port: fromPort });
      const target = new Redis({ host: "127.0.0.1", port: toPort });
      let moved = 0;
      try {
        await target.cluster("SETSLOT", slot, "IMPORTING", from);
        await source.cluster("SETSLOT", slot, "MIGRATING", to);
        while (true) {
          const keys = (await source.cluster("GETKEYSINSLOT", slot, pipeline)) as string[];
          if (keys.length === 0) break;
          await source.migrate("127.0.0.1", toPort, "", 0, 10_000, "REPLACE", "KEYS", ...keys);
          moved += keys.length;
          if (pauseMs > 0) await sleep(pauseMs);
        }
        // the target first, as redis-cli does: it owns the slot before the source stops redirecting
        await target.cluster("SETSLOT", slot, "NODE", to);
        await source.cluster("SETSLOT", slot, "NODE", to);
        for (const port of ports) {
          if (port === fromPort || port === toPort) continue;
          await command(port, (client) => client.cluster("SETSLOT", slot, "NODE", to));
        }
      } finally {
        source.disconnect();
        target.disconnect();
      }
      return moved;
    },
    stop: stopAll,
  };
}

async function startNode(dir: string, index: number): Promise<{ port: number; proc: ManagedProcess }> {
  return startOnFreePort(
    `redis-cluster-${index} did not start`,
    async (port) => {
      // a directory per port: a node's nodes.conf must not outlive a failed try on another port
      const nodeDir = join(dir, `node-${index}-${port}`);
      await mkdir(nodeDir, { recursive: true });
      return startProcess(
        `redis-cluster-${index}`,
        process.env.REDIS_SERVER_BIN ?? "redis-server",
        [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--dir",
          nodeDir,
          "--save",
          "",
          "--appendonly",
          "no",
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(nodeDir, "nodes.conf"),
          "--cluster-node-timeout",
          "5000",
        ],
        { logFile: join(nodeDir, "redis.log") },
      );
    },
    (port, proc) => waitForRedis({ host: "127.0.0.1", port }, proc),
  );
}

async function ownerOf(ports: readonly number[], slot: number): Promise<number> {
  const slots = await command(ports[0]!, (client) => client.cluster("SLOTS"));
  const range = slots.find(([first, last]) => slot >= first && slot <= last);
  const port = range?.[2]?.[1];
  if (port === undefined) throw new Error(`slot ${slot} is not served`);
  return Number(port);
}

async function command<T>(port: number, call: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await client.connect();
    return await call(client);
  } finally {
    client.disconnect();
  }
}

async function until(timeoutMs: number, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}
