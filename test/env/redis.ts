import { rmSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis, type RedisOptions } from "ioredis";
import { loopbackServerPki } from "./pki.ts";
import { freePort } from "./ports.ts";
import { type ManagedProcess, startProcess } from "./process.ts";

export interface TestRedis {
  /** URL of the admin: `redis://` (or `rediss://` with TLS), with the password when ACL users are set. */
  readonly url: string;
  readonly port: number;
  /** PEM file of the CA of the server's certificate, with TLS. */
  readonly caFile: string | undefined;
  /** The server's working directory (logs, the ACL file, certificates). */
  readonly dir: string;
  /** A client of the admin (`default` user), trusting the CA when TLS is on. */
  connect(options?: RedisOptions): Redis;
  /**
   * Kills the server (SIGKILL by default: a crash, no last fsync) and starts it again on the same
   * port and directory, so it comes back with what its persistence kept; resolves once it answers.
   */
  restart(options?: { signal?: "SIGKILL" | "SIGTERM"; downMs?: number }): Promise<RedisRestart>;
  stop(): Promise<void>;
}

export interface RedisRestart {
  /** When the server was signalled, and when it answered PING again (epoch ms). */
  readonly killedAt: number;
  readonly upAt: number;
}

export interface RedisServerOptions {
  /**
   * ACL users, one `user …` line each (the ACL file's syntax). The `default` user then needs
   * a password: the admin's, in `url`.
   */
  aclUsers?: readonly string[];
  /** Serve TLS only (no plain port), with a throwaway CA and a certificate for 127.0.0.1. */
  tls?: boolean;
  /** Persist with an append-only file fsynced this often (default: no persistence at all). */
  appendfsync?: "always" | "everysec";
}

/** Password of the `default` user when ACL users are configured. */
const ADMIN_PASSWORD = "test-redis-admin-password";

/** Starts Debian's `redis-server` on a free loopback port, in a throwaway directory. */
export async function startRedis(options: RedisServerOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), "dataforce-redis-"));
  // If the run ends without stop() (Ctrl-C), process.ts kills redis-server; then the files go.
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  const extraArgs: string[] = [];
  let caFile: string | undefined;
  let tls: RedisOptions["tls"];
  if (options.tls) {
    const pki = await loopbackServerPki(dir, "redis");
    caFile = pki.caFile;
    tls = { ca: await readFile(pki.caFile) };
    extraArgs.push("--tls-cert-file", pki.certFile, "--tls-key-file", pki.keyFile);
    extraArgs.push("--tls-ca-cert-file", pki.caFile, "--tls-auth-clients", "no");
  }
  const password = options.aclUsers ? ADMIN_PASSWORD : undefined;
  if (options.aclUsers) {
    const aclFile = join(dir, "users.acl");
    const lines = [`user default on >${ADMIN_PASSWORD} ~* &* +@all`, ...options.aclUsers];
    await writeFile(aclFile, `${lines.join("\n")}\n`, { mode: 0o600 });
    extraArgs.push("--aclfile", aclFile);
  }
  const adminOptions = (port: number): RedisOptions => ({
    port,
    host: "127.0.0.1",
    ...(password ? { password } : {}),
    ...(tls ? { tls } : {}),
  });
  const persistence = options.appendfsync
    ? ["--appendonly", "yes", "--appendfsync", options.appendfsync]
    : ["--appendonly", "no"];
  const launch = (port: number) => {
    const portArgs = options.tls ? ["--port", "0", "--tls-port", String(port)] : ["--port", String(port)];
    return startProcess(
      "redis-server",
      process.env.REDIS_SERVER_BIN ?? "redis-server",
      [...portArgs, "--bind", "127.0.0.1", "--dir", dir, "--save", "", ...persistence, ...extraArgs],
      { logFile: join(dir, "redis.log") },
    );
  };
  const started = await startOnFreePort(
    "redis-server did not start (is Debian's redis-server installed?)",
    launch,
    (port, proc) => waitForRedis(adminOptions(port), proc),
  );
  const { port } = started;
  let { proc } = started;
  const scheme = options.tls ? "rediss" : "redis";
  const auth = password ? `default:${password}@` : "";
  return {
    url: `${scheme}://${auth}127.0.0.1:${port}`,
    port,
    caFile,
    dir,
    connect: (extra = {}) => new Redis({ ...adminOptions(port), ...extra }),
    async restart({ signal = "SIGKILL", downMs = 0 } = {}) {
      const exited = new Promise((resolve) => proc.child.once("exit", resolve));
      proc.child.kill(signal);
      const killedAt = Date.now();
      await exited;
      await proc.stop();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      // the same port: clients keep their address, as with a restarted Pod behind a Service
      proc = launch(port);
      await waitForRedis(adminOptions(port), proc);
      return { killedAt, upAt: Date.now() };
    },
    async stop() {
      await proc.stop();
      process.removeListener("exit", removeDir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a server on a free loopback port and waits until it is `ready`; when it cannot listen
 * or answer there (another process took the port meanwhile), tries another port, up to 5 times.
 * Redis, Sentinel and Cluster nodes alike.
 */
export async function startOnFreePort(
  failure: string,
  launch: (port: number) => ManagedProcess | Promise<ManagedProcess>,
  ready: (port: number, proc: ManagedProcess) => Promise<void>,
): Promise<{ port: number; proc: ManagedProcess }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = await launch(port);
    try {
      await ready(port, proc);
      return { port, proc };
    } catch (error) {
      lastError = error;
      await proc.stop();
    }
  }
  throw new Error(`${failure}: ${String(lastError)}`);
}

/** Resolves once a redis-server (or Sentinel) answers PING; fails early if `proc` exits. */
export async function waitForRedis(options: RedisOptions, proc: ManagedProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`redis-server exited with ${proc.child.exitCode}`);
    const client = new Redis({ ...options, lazyConnect: true, maxRetriesPerRequest: 0 });
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
