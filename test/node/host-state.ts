/**
 * What a real node changes on the host, and how it is put back. The kubelet, kube-proxy,
 * containerd and the CNI bridge plugin write outside their own directories: sysctls, iptables
 * chains (KUBE-*), a bridge, cgroups (/kubepods), mounts, symlinks in /var/log/containers, CNI's
 * result cache, and containerd shims that outlive their parent. Only one node may run on a
 * machine (a lock file holds its record), and a run that died without its teardown is cleaned
 * up by the next one, from that record.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, readdir, readFile, readlink, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The lock of "a node runs on this machine", with its record (HostRecord). */
export const LOCK_FILE = "/run/lock/dataforce-webhooks-node.json";
/** The chain prefixes of the kubelet's and kube-proxy's iptables rules, and of node.ts's own. */
const NODE_CHAIN = /^(KUBE-|DFW-NODE-)/;
/** Chains of a Kubernetes node, ours or another's. */
const KUBE_CHAIN = /^KUBE-/;
/** Sysctls the kubelet, kube-proxy or the bridge plugin may set; put back as they were. */
const SYSCTLS = [
  "vm/overcommit_memory",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
  "net/ipv4/ip_forward",
  "net/ipv4/conf/all/route_localnet",
  "net/netfilter/nf_conntrack_max",
  "net/netfilter/nf_conntrack_tcp_timeout_established",
  "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
] as const;

/** Everything a teardown needs, written before anything is changed. */
export interface HostRecord {
  /** The test run that owns the node. */
  pid: number;
  /** Temp dir holding every state/root dir of the node (mounts under it are the node's). */
  dir: string;
  /** Linux bridge the pods are attached to (created for the node, deleted with it). */
  bridge: string;
  /** CNI network name (CNI caches results under /var/lib/cni/results/<name>-*). */
  network: string;
  /** containerd's socket: its shims name it in their command line. */
  containerdSocket: string;
  /** Sysctl values before the node started. */
  sysctls: Record<string, string>;
}

/**
 * Takes the machine's node lock for `record`. A lock of a live process is refused; a lock of a
 * dead one is taken over after cleaning up what that run left. KUBE-* iptables chains with no
 * lock at all belong to some other Kubernetes on this host: refused, never touched.
 */
export async function acquireHost(record: Omit<HostRecord, "sysctls">): Promise<HostRecord> {
  const stale = await readRecord();
  if (stale) {
    if (isAlive(stale.pid)) {
      throw new Error(`a node of process ${stale.pid} runs on this machine (${LOCK_FILE}); one at a time`);
    }
    await restoreHost(stale);
  } else if ((await kubeChains("iptables")).length > 0) {
    throw new Error(
      "KUBE-* iptables chains exist and no node of ours owns them: another Kubernetes runs here",
    );
  }
  const full: HostRecord = { ...record, sysctls: await readSysctls() };
  await writeFile(LOCK_FILE, JSON.stringify(full), { flag: stale ? "w" : "wx", mode: 0o600 });
  return full;
}

/**
 * Puts the host back as `record` found it and releases the lock. Each step runs whatever the
 * previous ones did; the errors are thrown together at the end. Idempotent.
 */
export async function restoreHost(record: HostRecord): Promise<void> {
  const errors: unknown[] = [];
  const step = async (what: string, action: () => Promise<void>) => {
    try {
      await action();
    } catch (error) {
      errors.push(new Error(`${what}: ${error instanceof Error ? error.message : String(error)}`));
    }
  };
  // containers first (their processes hold the mounts and the cgroups), then the shims
  await step("container processes", () => killCgroupProcesses());
  await step("containerd shims", () => killShims(record.containerdSocket));
  await step("mounts", () => unmountUnder(record.dir));
  await step("cgroups", () => removeKubepodsCgroups());
  for (const tool of ["iptables", "ip6tables"] as const) {
    await step(tool, () => removeKubeChains(tool));
  }
  await step("bridge", () => deleteLink(record.bridge));
  await step("sysctls", () => writeSysctls(record.sysctls));
  await step("CNI cache", () => removeCniResults(record.network, record.dir));
  await step("container log links", () => removeLogLinks(record.dir));
  await step("node dir", () => rm(record.dir, { recursive: true, force: true, maxRetries: 3 }));
  if (errors.length > 0) {
    throw new AggregateError(errors, `restoring the host after the node left: ${errors.join("; ")}`);
  }
  // the lock goes last: a failed restore leaves it, so the next run tries again
  if ((await readRecord())?.pid === record.pid) await rm(LOCK_FILE, { force: true });
}

async function readRecord(): Promise<HostRecord | undefined> {
  const text = await readFile(LOCK_FILE, "utf8").catch(() => undefined);
  return text ? (JSON.parse(text) as HostRecord) : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

// --- sysctls ---------------------------------------------------------------------------

async function readSysctls(): Promise<Record<string, string>> {
  const values: Record<string, string> = {};
  for (const name of SYSCTLS) {
    const value = await readFile(join("/proc/sys", name), "utf8").catch(() => undefined);
    if (value !== undefined) values[name] = value.trim();
  }
  return values;
}

async function writeSysctls(values: Record<string, string>): Promise<void> {
  const now = await readSysctls();
  for (const [name, value] of Object.entries(values)) {
    if (!(SYSCTLS as readonly string[]).includes(name) || now[name] === value) continue;
    await writeFile(join("/proc/sys", name), value);
  }
}

// --- processes -------------------------------------------------------------------------

/** PIDs in the kubelet's pod cgroups (every container process of the node), SIGKILLed. */
async function killCgroupProcesses(): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const pids = new Set<number>();
    for (const dir of await kubepodsDirs()) {
      const procs = await readFile(join(dir, "cgroup.procs"), "utf8").catch(() => "");
      for (const line of procs.split("\n")) if (line.trim()) pids.add(Number(line));
    }
    if (pids.size === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error("processes left in /kubepods cgroups after SIGKILL");
}

/** containerd's runc shims outlive containerd (they are reparented to init): found by socket. */
async function killShims(containerdSocket: string): Promise<void> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(join("/proc", entry, "cmdline"), "utf8").catch(() => "");
    const args = cmdline.split("\0");
    if (!args[0]?.endsWith("containerd-shim-runc-v2")) continue;
    if (!args.includes(containerdSocket)) continue;
    try {
      process.kill(Number(entry), "SIGKILL");
    } catch {
      // gone already
    }
  }
}

// --- mounts and cgroups ----------------------------------------------------------------

/** Unmounts every mount point under `dir` (deepest first); the kubelet bind-mounts its root dir. */
async function unmountUnder(dir: string): Promise<void> {
  if (!dir.startsWith("/tmp/") || dir.length < "/tmp/x".length)
    throw new Error(`refusing to unmount under ${dir}`);
  for (let round = 0; round < 5; round++) {
    const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
    const points = mountinfo
      .split("\n")
      .map((line) => line.split(" ")[4] ?? "")
      .map((point) => point.replace(/\\040/g, " "))
      .filter((point) => point === dir || point.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length);
    if (points.length === 0) return;
    for (const point of points) {
      await run("umount", ["--lazy", point]).catch(() => undefined);
    }
  }
  throw new Error(`mounts left under ${dir}`);
}

/** /sys/fs/cgroup/<controller>/kubepods trees, leaves first. */
async function kubepodsDirs(): Promise<string[]> {
  const dirs: string[] = [];
  const walk = async (dir: string) => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) if (entry.isDirectory()) await walk(join(dir, entry.name));
    dirs.push(dir);
  };
  for (const controller of await readdir("/sys/fs/cgroup").catch(() => [])) {
    const root = join("/sys/fs/cgroup", controller, "kubepods");
    if (existsSync(root)) await walk(root);
  }
  return dirs;
}

async function removeKubepodsCgroups(): Promise<void> {
  for (const dir of await kubepodsDirs()) {
    if (!/^\/sys\/fs\/cgroup\/[\w,=.]+\/kubepods(\/|$)/.test(dir)) continue;
    await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
  }
}

// --- network ---------------------------------------------------------------------------

async function kubeChains(
  tool: "iptables" | "ip6tables",
  table = "filter",
  pattern: RegExp = KUBE_CHAIN,
): Promise<string[]> {
  const { stdout } = await run(`${tool}-save`, ["-t", table]).catch(() => ({ stdout: "" }));
  return stdout
    .split("\n")
    .filter((line) => line.startsWith(":"))
    .map((line) => line.slice(1).split(" ")[0] ?? "")
    .filter((chain) => pattern.test(chain));
}

/**
 * Deletes the rules that jump to KUBE-* (and DFW-NODE-*) chains from the built-in chains, then
 * those chains (kube-proxy --cleanup removes its own; the kubelet's KUBE-FIREWALL and canaries,
 * and node.ts's, stay otherwise).
 */
async function removeKubeChains(tool: "iptables" | "ip6tables"): Promise<void> {
  for (const table of ["filter", "nat", "mangle", "raw"]) {
    const { stdout } = await run(`${tool}-save`, ["-t", table]).catch(() => ({ stdout: "" }));
    for (const line of stdout.split("\n")) {
      const rule = line.match(/^-A (\S+) (.*-j ((?:KUBE-|DFW-NODE-)\S+).*)$/);
      if (!rule || NODE_CHAIN.test(rule[1] ?? "")) continue;
      await run(tool, ["-w", "-t", table, "-D", rule[1]!, ...splitRule(rule[2]!)]);
    }
    const chains = await kubeChains(tool, table, NODE_CHAIN);
    for (const chain of chains) await run(tool, ["-w", "-t", table, "-F", chain]);
    for (const chain of chains) await run(tool, ["-w", "-t", table, "-X", chain]);
  }
}

/** iptables-save quotes arguments with spaces (comments): split it as a shell would. */
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1] : m[2]!));
}

async function deleteLink(name: string): Promise<void> {
  if (!existsSync(join("/sys/class/net", name))) return;
  await run("ip", ["link", "delete", name]);
}

/**
 * libcni caches each ADD's result in /var/lib/cni/results as <network>-<sandbox>-<ifname>: ours
 * under the node's network name, and containerd's loopback ("cni-loopback") under the ids of the
 * node's sandboxes. A pod that was never deleted (a run that died) leaves both.
 */
async function removeCniResults(network: string, nodeDir: string): Promise<void> {
  const dir = "/var/lib/cni/results";
  const sandboxes = await readdir(
    join(nodeDir, "containerd", "root", "io.containerd.grpc.v1.cri", "sandboxes"),
  ).catch(() => []);
  const ours = (entry: string) =>
    entry.startsWith(`${network}-`) || sandboxes.some((id) => entry === `cni-loopback-${id}-lo`);
  for (const entry of await readdir(dir).catch(() => [])) {
    if (ours(entry)) await rm(join(dir, entry), { force: true });
  }
}

/** The kubelet links /var/log/containers/*.log to its pod log dir (which is under the node dir). */
async function removeLogLinks(nodeDir: string): Promise<void> {
  const dir = "/var/log/containers";
  for (const entry of await readdir(dir).catch(() => [])) {
    const path = join(dir, entry);
    if (!(await lstat(path)).isSymbolicLink()) continue;
    if ((await readlink(path)).startsWith(`${nodeDir}/`)) await rm(path, { force: true });
  }
  // the kubelet creates the dir; an empty one is left to nobody
  await rmdir(dir).catch(() => undefined);
}

/** What of the host a node changes, as far as a test can compare it before and after. */
export interface HostObservation {
  sysctls: Record<string, string>;
  /** KUBE-* and DFW-NODE-* chains, "<tool> <table> <chain>". */
  chains: string[];
  /** Whether the node's bridge exists (other links are other people's). */
  bridge: boolean;
  kubepodsCgroups: number;
  /** Mount points under /tmp/dfw-node-* (node.ts's dirs). */
  nodeMounts: number;
  lockHeld: boolean;
}

export async function observeHost(bridge: string): Promise<HostObservation> {
  const chains: string[] = [];
  for (const tool of ["iptables", "ip6tables"] as const) {
    for (const table of ["filter", "nat", "mangle", "raw"]) {
      for (const chain of await kubeChains(tool, table, NODE_CHAIN)) chains.push(`${tool} ${table} ${chain}`);
    }
  }
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  return {
    sysctls: await readSysctls(),
    chains,
    bridge: existsSync(join("/sys/class/net", bridge)),
    kubepodsCgroups: (await kubepodsDirs()).length,
    nodeMounts: mountinfo.split("\n").filter((line) => / \/tmp\/dfw-node-/.test(line)).length,
    lockHeld: existsSync(LOCK_FILE),
  };
}
