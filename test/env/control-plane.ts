import { generateKeyPair } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { runBuildScript } from "./build-script.ts";
import { ecKey, selfSignedCa, signLeaf } from "./pki.ts";
import { freePort } from "./ports.ts";
import { type ManagedProcess, startProcess } from "./process.ts";

/** The Kubernetes release the binaries are built from (build-control-plane.sh reads the same variable). */
export const KUBE_VERSION = process.env.KUBE_VERSION ?? "v1.36.3";

const BUILD_SCRIPT = join(import.meta.dirname, "build-control-plane.sh");
const BINARIES = ["etcd", "kube-apiserver", "kubectl"] as const;
const CONTROLLER_BINARIES = ["kube-controller-manager", "kube-scheduler"] as const;

export interface ControlPlane {
  /** Admin kubeconfig (client certificate in system:masters). */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** Directory holding etcd, kube-apiserver and kubectl. */
  readonly assetsDir: string;
  /** Temp dir with certificates, etcd data and the logs (etcd.log, kube-apiserver.log). */
  readonly dir: string;
  /**
   * Kills kube-apiserver (SIGKILL by default: a crash) and starts it again with the same flags and
   * port, so clients keep their kubeconfig; resolves once it is ready again. For fault tests.
   */
  restartApiServer(options?: RestartOptions): Promise<Restart>;
  /** The same for etcd: same ports, same data directory (what it had written survives). */
  restartEtcd(options?: RestartOptions): Promise<Restart>;
  /** Stops kube-apiserver then etcd (SIGTERM, then SIGKILL) and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

export interface RestartOptions {
  signal?: "SIGKILL" | "SIGTERM";
  /** How long the process stays down before it is started again (default 0). */
  downMs?: number;
}

export interface Restart {
  /** When the process was signalled, and when it was ready again (epoch ms). */
  readonly killedAt: number;
  readonly readyAt: number;
}

export interface ControlPlaneOptions {
  /** Defaults to resolveAssets(). */
  assetsDir?: string;
  /** Budget for each of etcd and kube-apiserver to become ready (default 60 s). */
  startTimeoutMs?: number;
  /** Extra kube-apiserver flags, e.g. ["--feature-gates=..."]. */
  apiServerArgs?: readonly string[];
  /** Extra etcd flags, e.g. ["--quota-backend-bytes=..."] for a data set beyond etcd's 2 GiB default. */
  etcdArgs?: readonly string[];
  /**
   * Also run kube-controller-manager (every default controller) and kube-scheduler, as a real
   * cluster's control plane does: namespaces terminate, garbage collection runs.
   */
  controllers?: boolean;
  /**
   * Keep the ServiceAccount admission plugin (off by default, as envtest has it): pods get their
   * service account's token and CA mounted, which pods on a real node (test/node/) need.
   */
  serviceAccountTokens?: boolean;
}

/**
 * Returns the directory holding etcd, kube-apiserver and kubectl: `KUBEBUILDER_ASSETS`
 * when set, otherwise the build cache, building the binaries first if needed
 * (minutes, once per machine; progress goes to stderr).
 */
export async function resolveAssets(): Promise<string> {
  const fromEnv = process.env.KUBEBUILDER_ASSETS;
  if (fromEnv) {
    const missing = BINARIES.filter((name) => !existsSync(join(fromEnv, name)));
    if (missing.length > 0) throw new Error(`KUBEBUILDER_ASSETS=${fromEnv} lacks ${missing.join(", ")}`);
    return fromEnv;
  }
  const dir = await runBuildScript(BUILD_SCRIPT);
  const missing = BINARIES.filter((name) => !existsSync(join(dir, name)));
  if (missing.length > 0) throw new Error(`${dir} lacks ${missing.join(", ")}`);
  return dir;
}

/** Starts etcd and kube-apiserver and waits until the API answers; see ControlPlane. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const assetsDir = options.assetsDir ?? (await resolveAssets());
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  await removeStaleDirs();
  const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  await writeFile(join(dir, "owner.pid"), String(process.pid));
  // Last resort if the run dies without calling stop(): the processes are killed by
  // process.ts (registered first, so it runs first); then the files go.
  const removeDir = () => rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  process.once("exit", removeDir);

  let etcd: ManagedProcess | undefined;
  let apiserver: ManagedProcess | undefined;
  const controllers: ManagedProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(controllers.map((proc) => proc.stop(5_000)));
    await apiserver?.stop(10_000);
    await etcd?.stop(5_000);
    process.removeListener("exit", removeDir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };

  const apiArgs = [
    // no pods, no service account tokens to mount (envtest's default)
    ...(options.serviceAccountTokens ? [] : ["--disable-admission-plugins=ServiceAccount"]),
    ...(options.apiServerArgs ?? []),
  ];
  try {
    const pki = await createPki(dir);
    const started = await startEtcd(assetsDir, dir, timeoutMs, options.etcdArgs ?? []);
    etcd = started.proc;
    const api = await startApiServer(assetsDir, dir, pki, started.url, timeoutMs, apiArgs);
    apiserver = api.proc;
    const kubeconfigPath = join(dir, "kubeconfig");
    await writeFile(kubeconfigPath, kubeconfig(api.server, pki), { mode: 0o600 });
    if (options.controllers) {
      const missing = CONTROLLER_BINARIES.filter((name) => !existsSync(join(assetsDir, name)));
      if (missing.length > 0) throw new Error(`${assetsDir} lacks ${missing.join(", ")}`);
      controllers.push(...(await startControllers(assetsDir, dir, kubeconfigPath, pki, timeoutMs)));
    }
    /** Signals `proc`, waits for its exit and `downMs`, then `start()`s it again. */
    const restart = async (
      proc: ManagedProcess,
      { signal = "SIGKILL", downMs = 0 }: RestartOptions,
      start: () => Promise<ManagedProcess>,
    ): Promise<{ proc: ManagedProcess; restart: Restart }> => {
      const exited = new Promise((resolve) => {
        if (proc.child.exitCode !== null || proc.child.signalCode !== null) resolve(undefined);
        else proc.child.once("exit", resolve);
      });
      proc.child.kill(signal);
      const killedAt = Date.now();
      await exited;
      await proc.stop();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      const next = await start();
      return { proc: next, restart: { killedAt, readyAt: Date.now() } };
    };
    return {
      kubeconfigPath,
      server: api.server,
      assetsDir,
      dir,
      stop,
      async restartApiServer(restartOptions = {}) {
        const { proc, restart: done } = await restart(api.proc, restartOptions, async () => {
          const again = await startApiServer(assetsDir, dir, pki, started.url, timeoutMs, apiArgs, api.port);
          return again.proc;
        });
        api.proc = proc;
        apiserver = proc;
        return done;
      },
      async restartEtcd(restartOptions = {}) {
        const { proc, restart: done } = await restart(started.proc, restartOptions, async () => {
          const again = await startEtcd(assetsDir, dir, timeoutMs, options.etcdArgs ?? [], started.ports);
          return again.proc;
        });
        started.proc = proc;
        etcd = proc;
        // the API server reconnects by itself; ready once it serves again
        await waitUntil(api.proc, join(dir, "kube-apiserver.log"), timeoutMs, () =>
          apiReady(api.server, pki),
        );
        return { killedAt: done.killedAt, readyAt: Date.now() };
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

const DIR_PREFIX = "dataforce-cp-";

/**
 * A run that was SIGKILLed leaves its temp dir behind (its processes died with it, see
 * process.ts); remove the dirs whose owner process is gone.
 */
async function removeStaleDirs(): Promise<void> {
  const entries = await readdir(tmpdir()).catch(() => []);
  for (const entry of entries.filter((name) => name.startsWith(DIR_PREFIX))) {
    const dir = join(tmpdir(), entry);
    const owner = Number(await readFile(join(dir, "owner.pid"), "utf8").catch(() => ""));
    if (!Number.isInteger(owner) || owner <= 0 || isAlive(owner)) continue;
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

// --- certificates ------------------------------------------------------------------

interface Pki {
  /** CA that signed the serving certificate (goes into the kubeconfig). */
  servingCa: string;
  servingCaFile: string;
  servingCertFile: string;
  servingKeyFile: string;
  clientCaFile: string;
  adminCert: string;
  adminKey: string;
  saPublicKeyFile: string;
  saPrivateKeyFile: string;
}

/** The API server's serving and client PKI (see pki.ts for how certificates are made). */
async function createPki(dir: string): Promise<Pki> {
  const file = (name: string) => join(dir, name);
  const [servingCaKey, servingKey, clientCaKey, adminKey, saKey] = await Promise.all([
    ecKey(),
    ecKey(),
    ecKey(),
    ecKey(),
    // RSA for service-account tokens: RS256 is what every token consumer accepts.
    promisify(generateKeyPair)("rsa", {
      modulusLength: 2048,
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    }),
  ]);
  await Promise.all([
    writeFile(file("serving-ca.key"), servingCaKey, { mode: 0o600 }),
    writeFile(file("apiserver.key"), servingKey, { mode: 0o600 }),
    writeFile(file("client-ca.key"), clientCaKey, { mode: 0o600 }),
    writeFile(file("admin.key"), adminKey, { mode: 0o600 }),
    writeFile(file("sa.pub"), saKey.publicKey),
    writeFile(file("sa.key"), saKey.privateKey, { mode: 0o600 }),
  ]);
  await Promise.all([
    selfSignedCa(dir, "serving-ca", "dataforce-test-serving-ca"),
    selfSignedCa(dir, "client-ca", "dataforce-test-client-ca"),
  ]);
  await Promise.all([
    signLeaf(dir, "apiserver", "serving-ca", "/CN=kube-apiserver", [
      "extendedKeyUsage = serverAuth",
      "subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, IP:10.0.0.1",
    ]),
    signLeaf(dir, "admin", "client-ca", "/O=system:masters/CN=admin", ["extendedKeyUsage = clientAuth"]),
  ]);
  return {
    servingCa: await readFile(file("serving-ca.crt"), "utf8"),
    servingCaFile: file("serving-ca.crt"),
    servingCertFile: file("apiserver.crt"),
    servingKeyFile: file("apiserver.key"),
    clientCaFile: file("client-ca.crt"),
    adminCert: await readFile(file("admin.crt"), "utf8"),
    adminKey,
    saPublicKeyFile: file("sa.pub"),
    saPrivateKeyFile: file("sa.key"),
  };
}

// --- etcd ---------------------------------------------------------------------------

async function startEtcd(
  assetsDir: string,
  dir: string,
  timeoutMs: number,
  extraArgs: readonly string[],
  fixedPorts?: readonly [number, number],
): Promise<{ proc: ManagedProcess; url: string; ports: readonly [number, number] }> {
  const logFile = join(dir, "etcd.log");
  return retryOnPortClash("etcd", logFile, async () => {
    const [clientPort, peerPort] = fixedPorts ?? [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const proc = startProcess(
      "etcd",
      join(assetsDir, "etcd"),
      [
        "--name=dataforce-test",
        `--data-dir=${join(dir, "etcd-data")}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=dataforce-test=${peer}`,
        "--unsafe-no-fsync=true",
        ...extraArgs,
      ],
      { logFile },
    );
    await waitUntil(proc, logFile, timeoutMs, async () => {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      const body = (await response.json()) as { health?: string };
      return body.health === "true";
    });
    return { proc, url, ports: [clientPort, peerPort] as const };
  });
}

// --- kube-apiserver -----------------------------------------------------------------

async function startApiServer(
  assetsDir: string,
  dir: string,
  pki: Pki,
  etcdUrl: string,
  timeoutMs: number,
  extraArgs: readonly string[],
  fixedPort?: number,
): Promise<{ proc: ManagedProcess; server: string; port: number }> {
  const logFile = join(dir, "kube-apiserver.log");
  return retryOnPortClash("kube-apiserver", logFile, async () => {
    const port = fixedPort ?? (await freePort());
    const server = `https://127.0.0.1:${port}`;
    const proc = startProcess(
      "kube-apiserver",
      join(assetsDir, "kube-apiserver"),
      [
        `--etcd-servers=${etcdUrl}`,
        `--secure-port=${port}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--cert-dir=${dir}`,
        `--tls-cert-file=${pki.servingCertFile}`,
        `--tls-private-key-file=${pki.servingKeyFile}`,
        `--client-ca-file=${pki.clientCaFile}`,
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--service-account-issuer=https://kubernetes.default.svc",
        `--service-account-key-file=${pki.saPublicKeyFile}`,
        `--service-account-signing-key-file=${pki.saPrivateKeyFile}`,
        "--allow-privileged=true",
        // A test cluster has one apiserver and no peers to hand requests to on shutdown.
        "--shutdown-delay-duration=0s",
        ...extraArgs,
      ],
      { logFile },
    );
    await waitUntil(proc, logFile, timeoutMs, () => apiReady(server, pki));
    return { proc, server, port };
  });
}

// --- kube-controller-manager, kube-scheduler ------------------------------------------

/**
 * Both with the admin kubeconfig (system:masters; a real cluster gives each its own identity),
 * serving only their health checks on loopback, without leader election (one of each).
 */
async function startControllers(
  assetsDir: string,
  dir: string,
  kubeconfigPath: string,
  pki: Pki,
  timeoutMs: number,
): Promise<ManagedProcess[]> {
  const common = (port: number) => [
    `--kubeconfig=${kubeconfigPath}`,
    `--authentication-kubeconfig=${kubeconfigPath}`,
    `--authorization-kubeconfig=${kubeconfigPath}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${port}`,
    "--leader-elect=false",
  ];
  const start = (name: string, args: (port: number) => string[]) => {
    const logFile = join(dir, `${name}.log`);
    return retryOnPortClash(name, logFile, async () => {
      const port = await freePort();
      const proc = startProcess(name, join(assetsDir, name), args(port), { logFile });
      await waitUntil(proc, logFile, timeoutMs, async () => {
        const health = await httpsGet(`https://127.0.0.1:${port}/healthz`, { rejectUnauthorized: false });
        return health.status === 200;
      });
      return proc;
    });
  };
  return Promise.all([
    start("kube-controller-manager", (port) => [
      ...common(port),
      `--cert-dir=${join(dir, "kube-controller-manager")}`,
      `--service-account-private-key-file=${pki.saPrivateKeyFile}`,
      `--root-ca-file=${pki.servingCaFile}`,
      "--use-service-account-credentials=false",
    ]),
    start("kube-scheduler", (port) => [...common(port), `--cert-dir=${join(dir, "kube-scheduler")}`]),
  ]);
}

async function apiReady(server: string, pki: Pki): Promise<boolean> {
  const tls = { ca: pki.servingCa, cert: pki.adminCert, key: pki.adminKey };
  // readyz covers etcd, RBAC bootstrap roles and the other post-start hooks; the
  // default namespace is created by a bootstrap controller a little later.
  const ready = await httpsGet(`${server}/readyz`, tls);
  if (ready.status !== 200) return false;
  const ns = await httpsGet(`${server}/api/v1/namespaces/default`, tls);
  return ns.status === 200;
}

function kubeconfig(server: string, pki: Pki): string {
  const b64 = (pem: string) => Buffer.from(pem).toString("base64");
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "envtest", cluster: { server, "certificate-authority-data": b64(pki.servingCa) } }],
    users: [
      {
        name: "admin",
        user: { "client-certificate-data": b64(pki.adminCert), "client-key-data": b64(pki.adminKey) },
      },
    ],
    contexts: [{ name: "envtest", context: { cluster: "envtest", user: "admin", namespace: "default" } }],
    "current-context": "envtest",
  });
}

// --- helpers ------------------------------------------------------------------------

function httpsGet(
  url: string,
  tls: { ca: string; cert: string; key: string } | { rejectUnauthorized: false },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, method: "GET", timeout: 2_000, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

class StartError extends Error {
  readonly portClash: boolean;
  constructor(message: string, portClash: boolean) {
    super(message);
    this.portClash = portClash;
  }
}

/** Polls `ready` until it says yes; fails fast when the process exits, with the log's tail. */
async function waitUntil(
  proc: ManagedProcess,
  logFile: string,
  timeoutMs: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    const { exitCode, signalCode } = proc.child;
    if (exitCode !== null || signalCode !== null) {
      await proc.stop();
      const log = await tail(logFile);
      throw new StartError(
        `${proc.name} exited (${signalCode ?? exitCode}) during start; ${basename(logFile)} ends with:\n${log}`,
        /address already in use/i.test(log),
      );
    }
    try {
      if (await ready()) return;
      lastError = "not ready yet";
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await proc.stop();
  throw new StartError(
    `${proc.name} not ready after ${timeoutMs} ms (${lastError}); ${basename(logFile)} ends with:\n${await tail(logFile)}`,
    false,
  );
}

/** Free ports are probed, then bound by another process: a clash is rare but possible. */
async function retryOnPortClash<T>(name: string, logFile: string, attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof StartError && error.portClash) || i >= 3) throw error;
      await writeFile(logFile, `--- ${name}: port clash, retrying with new ports\n`, { flag: "a" });
    }
  }
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, "utf8")).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
