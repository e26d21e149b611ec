import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { type ManagedProcess, startProcess } from "./process.ts";
import { startOnFreePort } from "./redis.ts";

const run = promisify(execFile);

/** Debian's PostgreSQL 15 server binaries, when they are not on PATH. */
const DEBIAN_BIN = "/usr/lib/postgresql/15/bin";

export interface TestPostgres {
  /** `postgres://…@127.0.0.1:<port>/postgres` (trust authentication: a throwaway cluster). */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /**
   * Stops the server, keeping the data directory for start(): SIGINT is PostgreSQL's fast
   * shutdown (clients are disconnected; SIGTERM's smart shutdown would wait for them), SIGKILL a crash.
   */
  stop(signal?: "SIGINT" | "SIGKILL"): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  destroy(): Promise<void>;
}

/** The directory holding initdb and postgres: PATH first, else Debian's. */
async function binDir(): Promise<string> {
  try {
    const { stdout } = await run("sh", ["-c", "command -v initdb"]);
    const initdb = stdout.trim();
    if (initdb !== "") return initdb.slice(0, initdb.lastIndexOf("/"));
  } catch {
    // not on PATH
  }
  if (existsSync(join(DEBIAN_BIN, "initdb"))) return DEBIAN_BIN;
  throw new Error(
    "PostgreSQL's initdb was found neither on PATH nor in /usr/lib/postgresql/15/bin (make deps)",
  );
}

/**
 * PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user (Debian's
 * package creates it) or `nobody`, through setpriv; otherwise as ourselves.
 */
async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (userInfo().uid !== 0) return undefined;
  for (const name of ["postgres", "nobody"]) {
    try {
      const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
        run("id", ["-u", name]),
        run("id", ["-g", name]),
      ]);
      return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
    } catch {
      // no such user
    }
  }
  throw new Error("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as");
}

function asUser(user: { uid: number; gid: number } | undefined, command: string, args: string[]) {
  if (!user) return { command, args };
  return {
    command: "/usr/bin/setpriv",
    args: [
      "--reuid",
      String(user.uid),
      "--regid",
      String(user.gid),
      "--clear-groups",
      "--",
      command,
      ...args,
    ],
  };
}

/**
 * A throwaway PostgreSQL: initdb into a temp directory, `postgres` on a free loopback port (its
 * unix socket in the same directory), fsync off (tests, not durability), trust authentication.
 */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = await binDir();
  const user = await serverUser();
  const dir = await mkdtemp(join(tmpdir(), "dataforce-postgres-"));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  const data = join(dir, "data");
  if (user) await chown(dir, user.uid, user.gid);
  const init = asUser(user, join(bin, "initdb"), [
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=trust",
    "--no-sync",
    "-E",
    "UTF8",
    "--locale=C",
  ]);
  await run(init.command, init.args);
  const launch = (port: number): ManagedProcess => {
    const server = asUser(user, join(bin, "postgres"), [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=200",
    ]);
    return startProcess("postgres", server.command, server.args, { logFile: join(dir, "postgres.log") });
  };
  const started = await startOnFreePort("postgres did not start", launch, (port, proc) =>
    waitForPostgres(port, proc),
  );
  const { port } = started;
  let proc: ManagedProcess | undefined = started.proc;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async stop(signal = "SIGINT") {
      if (!proc) return;
      const exited = new Promise((resolve) => {
        if (proc!.child.exitCode !== null || proc!.child.signalCode !== null) resolve(undefined);
        else proc!.child.once("exit", resolve);
      });
      proc.child.kill(signal);
      await exited;
      await proc.stop();
      proc = undefined;
    },
    async start() {
      if (proc) return;
      proc = launch(port);
      await waitForPostgres(port, proc);
    },
    async destroy() {
      proc?.child.kill("SIGINT");
      await proc?.stop();
      proc = undefined;
      process.removeListener("exit", removeDir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once the server answers a query; fails early if `proc` exits. */
async function waitForPostgres(port: number, proc: ManagedProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`postgres exited with ${proc.child.exitCode}`);
    const sql = postgres(`postgres://postgres@127.0.0.1:${port}/postgres`, {
      max: 1,
      connect_timeout: 2,
      onnotice: () => {},
    });
    try {
      await sql`select 1`;
      return;
    } catch {
      // starting up
    } finally {
      await sql.end({ timeout: 1 });
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("postgres did not answer within 30s");
}

/** A fresh database on the server (tests isolate themselves by database); returns its URL. */
export async function createDatabase(server: TestPostgres, name: string): Promise<string> {
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid database name ${name}`);
  const sql = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`create database ${name}`);
  } finally {
    await sql.end({ timeout: 1 });
  }
  return server.url.replace(/\/postgres$/, `/${name}`);
}
