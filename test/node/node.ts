/**
 * A real Kubernetes node for tests, on this machine, beside a control plane of test/env: Debian's
 * containerd + runc, a kubelet and kube-proxy built from k8s.io/kubernetes (build-node.sh),
 * CoreDNS built from its Go module, the CNI bridge + host-local plugins from Debian's
 * containernetworking-plugins, and a pause image built from pause.c (build-pause.sh).
 *
 * Network: pods sit on a bridge of their own (BRIDGE, POD_CIDR) whose gateway address belongs to
 * the host; kube-proxy (iptables) implements Services; CoreDNS runs on the host and answers on the
 * gateway address. The API server stays on 127.0.0.1: the `kubernetes` Service reaches it through
 * kube-proxy's DNAT to 127.0.0.1, which the kernel routes from the bridge only with
 * route_localnet set on that bridge. Everything the node changes on the host is listed and put
 * back by host-state.ts, also after a run that died.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { runBuildScript } from "../env/build-script.ts";
import type { ControlPlane } from "../env/control-plane.ts";
import { freePort } from "../env/ports.ts";
import { type ManagedProcess, startProcess } from "../env/process.ts";
import { acquireHost, type HostRecord, restoreHost } from "./host-state.ts";

const run = promisify(execFile);

export const NODE_NAME = "dfw-node";
export const BRIDGE = "dfw0";
/** The pods' addresses; .1 is the host (gateway, DNS, test receivers). */
export const POD_CIDR = "10.209.0.0/24";
export const GATEWAY_IP = "10.209.0.1";
export const CLUSTER_DOMAIN = "cluster.local";
/** The sandbox image containerd runs each pod's namespaces with (build-pause.sh builds it). */
export const PAUSE_IMAGE = "localhost/dataforce-webhooks/pause:local";
const CNI_NETWORK = "dataforce-node";
/** iptables chain (nat) of the node's own rules; host-state.ts removes DFW-NODE-* with KUBE-*. */
const API_CHAIN = "DFW-NODE-API";
const CNI_BIN_DIR = "/usr/lib/cni";
const BUILD_NODE = join(import.meta.dirname, "build-node.sh");
const BUILD_PAUSE = join(import.meta.dirname, "build-pause.sh");
const BUILD_COREDNS = join(import.meta.dirname, "build-coredns.sh");

export interface Node {
  readonly name: string;
  /** Temp dir with every state dir and the logs (containerd.log, kubelet.log, ...). */
  readonly dir: string;
  /** `ctr images import` of an OCI archive into the namespace the kubelet uses. */
  importImage(archive: string): Promise<void>;
  /** The last lines of each process's log and of each container's, for a failing test. */
  logs(lines?: number): Promise<string>;
  /** Stops everything and puts the host back (host-state.ts). Idempotent. */
  stop(): Promise<void>;
}

/** The binaries a node needs, building what is missing (minutes, once per machine). */
export async function nodeAssets(): Promise<{ nodeDir: string; corednsBin: string; pauseArchive: string }> {
  for (const tool of ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", join(CNI_BIN_DIR, "bridge")]) {
    if (!existsSync(tool)) {
      throw new Error(
        `${tool} is missing: apt-get install containerd runc containernetworking-plugins (make deps)`,
      );
    }
  }
  const [nodeDir, corednsBin, pauseArchive] = await Promise.all([
    runBuildScript(BUILD_NODE),
    runBuildScript(BUILD_COREDNS),
    runBuildScript(BUILD_PAUSE, { PAUSE_IMAGE }),
  ]);
  return { nodeDir, corednsBin, pauseArchive };
}

/** Starts a node registered with `controlPlane` and waits until it is Ready and DNS answers. */
export async function startNode(controlPlane: ControlPlane, timeoutMs = 180_000): Promise<Node> {
  if (process.getuid?.() !== 0) throw new Error("a node needs root (containerd, kubelet, iptables)");
  const assets = await nodeAssets();
  const dir = await mkdtemp("/tmp/dfw-node-");
  const socket = join(dir, "containerd", "containerd.sock");
  const record: HostRecord = await acquireHost({
    pid: process.pid,
    dir,
    bridge: BRIDGE,
    network: CNI_NETWORK,
    containerdSocket: socket,
  });
  const procs: ManagedProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // kubelet first (it would restart containers), then the network, then the runtime
    for (const proc of [...procs].reverse()) await proc.stop(10_000);
    // kube-proxy's own cleanup of its iptables/nftables rules (host-state.ts removes the rest)
    await run(join(assets.nodeDir, "kube-proxy"), ["--cleanup"]).catch(() => undefined);
    await restoreHost(record);
  };

  try {
    await createBridge();
    await routeApiServer(controlPlane);
    const ctr = (args: readonly string[]) =>
      run("/usr/bin/ctr", ["--address", socket, "--namespace", "k8s.io", ...args], { maxBuffer: 16 << 20 });
    procs.push(await startContainerd(dir, socket, timeoutMs));
    await ctr(["images", "import", assets.pauseArchive]);

    const dnsReadyPort = await freePort();
    procs.push(
      await startCoreDns(assets.corednsBin, dir, controlPlane.kubeconfigPath, dnsReadyPort, timeoutMs),
    );
    // the kubelet first: kube-proxy waits for its Node object
    procs.push(await startKubelet(assets.nodeDir, dir, controlPlane, socket, timeoutMs));
    procs.push(await startKubeProxy(assets.nodeDir, dir, controlPlane.kubeconfigPath, timeoutMs));
    await waitNodeReady(controlPlane, dir, timeoutMs);

    return {
      name: NODE_NAME,
      dir,
      async importImage(archive) {
        await ctr(["images", "import", archive]);
      },
      logs: (lines = 40) => nodeLogs(dir, lines),
      stop,
    };
  } catch (error) {
    const logs = await nodeLogs(dir, 30).catch(() => "");
    await stop().catch((stopError: unknown) => console.error("node teardown failed:", stopError));
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logs}`, { cause: error });
  }
}

/**
 * The bridge exists before the first pod so that the host has the gateway address from the start
 * (CoreDNS and test receivers bind to it); the bridge plugin adopts it.
 */
async function createBridge(): Promise<void> {
  await run("ip", ["link", "add", BRIDGE, "type", "bridge"]);
  await run("ip", ["addr", "add", `${GATEWAY_IP}/${POD_CIDR.split("/")[1]}`, "dev", BRIDGE]);
  await run("ip", ["link", "set", BRIDGE, "up"]);
  // the API server's endpoint is 127.0.0.1: DNAT'ed packets from pods must be routable to it
  await writeFile(`/proc/sys/net/ipv4/conf/${BRIDGE}/route_localnet`, "1");
}

/**
 * The API server listens on 127.0.0.1, which it refuses as the `kubernetes` Service's endpoint
 * ("may not be in the loopback range"), so kube-proxy has none: pods' connections to that Service
 * are DNAT'ed to it here, in a chain of the node's own (removed by host-state.ts).
 */
async function routeApiServer(controlPlane: ControlPlane): Promise<void> {
  const { stdout } = await run(join(controlPlane.assetsDir, "kubectl"), [
    "--kubeconfig",
    controlPlane.kubeconfigPath,
    "get",
    "service",
    "kubernetes",
    "-n",
    "default",
    "-o",
    "jsonpath={.spec.clusterIP}",
  ]);
  const target = new URL(controlPlane.server);
  const nat = (...args: string[]) => run("iptables", ["-w", "-t", "nat", ...args]);
  await nat("-N", API_CHAIN);
  await nat(
    "-A",
    API_CHAIN,
    "-d",
    `${stdout.trim()}/32`,
    "-p",
    "tcp",
    "--dport",
    "443",
    "-j",
    "DNAT",
    "--to-destination",
    `${target.hostname}:${target.port}`,
  );
  await nat("-I", "PREROUTING", "-i", BRIDGE, "-j", API_CHAIN);
}

// --- containerd --------------------------------------------------------------------------

async function startContainerd(dir: string, socket: string, timeoutMs: number): Promise<ManagedProcess> {
  const base = join(dir, "containerd");
  const cniConfDir = join(dir, "cni", "net.d");
  await mkdir(cniConfDir, { recursive: true });
  // A CNI conf dir of its own: Debian's podman puts a bridge conflist in /etc/cni/net.d.
  await writeFile(
    join(cniConfDir, "10-dataforce-node.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      name: CNI_NETWORK,
      plugins: [
        {
          type: "bridge",
          bridge: BRIDGE,
          isGateway: true,
          // no masquerade: pods talk only to the host and each other
          ipMasq: false,
          // a pod reaching a Service whose endpoint is itself
          hairpinMode: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: POD_CIDR, gateway: GATEWAY_IP }]],
            routes: [{ dst: "0.0.0.0/0" }],
            dataDir: join(dir, "cni", "ipam"),
          },
        },
      ],
    }),
  );
  const config = join(base, "config.toml");
  await mkdir(base, { recursive: true });
  await writeFile(
    config,
    `version = 2
root = "${base}/root"
state = "${base}/state"
[grpc]
  address = "${socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "${base}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # lowering a process's oom_score_adj needs CAP_SYS_RESOURCE, which this sandbox lacks
  restrict_oom_score_adj = true
  disable_apparmor = true
  # network namespaces under the state dir, not /var/run/netns (torn down with the dir)
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "${base}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${cniConfDir}"
`,
  );
  const logFile = join(dir, "containerd.log");
  const proc = startProcess("containerd", "/usr/bin/containerd", ["--config", config], { logFile });
  await waitFor(proc, logFile, timeoutMs, async () => {
    await run("/usr/bin/ctr", ["--address", socket, "version"]);
    return true;
  });
  return proc;
}

// --- CoreDNS -----------------------------------------------------------------------------

/** Cluster DNS on the host, answering pods on the gateway address (no upstream: nothing leaves). */
async function startCoreDns(
  bin: string,
  dir: string,
  kubeconfig: string,
  readyPort: number,
  timeoutMs: number,
): Promise<ManagedProcess> {
  const corefile = join(dir, "Corefile");
  await writeFile(
    corefile,
    `.:53 {
  bind ${GATEWAY_IP}
  errors
  ready 127.0.0.1:${readyPort}
  kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
    kubeconfig ${kubeconfig}
    pods insecure
  }
}
`,
  );
  const logFile = join(dir, "coredns.log");
  const proc = startProcess("coredns", bin, ["-conf", corefile], { logFile });
  await waitFor(proc, logFile, timeoutMs, async () => {
    const response = await fetch(`http://127.0.0.1:${readyPort}/ready`, {
      signal: AbortSignal.timeout(2_000),
    });
    return response.ok;
  });
  return proc;
}

// --- kube-proxy --------------------------------------------------------------------------

async function startKubeProxy(
  nodeDir: string,
  dir: string,
  kubeconfig: string,
  timeoutMs: number,
): Promise<ManagedProcess> {
  const [healthz, metrics] = [await freePort(), await freePort()];
  const config = join(dir, "kube-proxy.yaml");
  await writeFile(
    config,
    stringify({
      apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
      kind: "KubeProxyConfiguration",
      clientConnection: { kubeconfig },
      hostnameOverride: NODE_NAME,
      mode: "iptables",
      clusterCIDR: POD_CIDR,
      healthzBindAddress: `127.0.0.1:${healthz}`,
      metricsBindAddress: `127.0.0.1:${metrics}`,
      // NodePorts on the node's own address only: no localhost NodePorts, which would set
      // route_localnet on every interface
      nodePortAddresses: ["primary"],
      // leave the host's conntrack sysctls alone
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
    }),
  );
  const logFile = join(dir, "kube-proxy.log");
  const proc = startProcess("kube-proxy", join(nodeDir, "kube-proxy"), ["--config", config], { logFile });
  // /livez: the proxier has synced its rules (/healthz also wants the Node to be schedulable)
  await waitFor(proc, logFile, timeoutMs, async () => {
    const response = await fetch(`http://127.0.0.1:${healthz}/livez`, { signal: AbortSignal.timeout(2_000) });
    return response.ok;
  });
  return proc;
}

// --- kubelet -----------------------------------------------------------------------------

async function startKubelet(
  nodeDir: string,
  dir: string,
  controlPlane: ControlPlane,
  socket: string,
  timeoutMs: number,
): Promise<ManagedProcess> {
  const [port, healthz] = [await freePort(), await freePort()];
  const root = join(dir, "kubelet");
  await mkdir(root, { recursive: true });
  const config = join(dir, "kubelet.yaml");
  await writeFile(
    config,
    stringify({
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      // the node's address (not loopback: the kubelet refuses a loopback node IP)
      address: GATEWAY_IP,
      port,
      readOnlyPort: 0,
      healthzBindAddress: "127.0.0.1",
      healthzPort: healthz,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true } },
      authorization: { mode: "Webhook" },
      clusterDNS: [GATEWAY_IP],
      clusterDomain: CLUSTER_DOMAIN,
      podLogsDir: join(dir, "pod-logs"),
      // this machine: cgroup v1 (hybrid), no systemd, swap allowed, no allocatable enforcement
      cgroupDriver: "cgroupfs",
      failCgroupV1: false,
      failSwapOn: false,
      enforceNodeAllocatable: [],
      // the images are imported, never pulled: never garbage-collect them
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { "memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%" },
      // a test cluster: pods leave fast
      syncFrequency: "10s",
      fileCheckFrequency: "10s",
      serializeImagePulls: false,
    }),
  );
  const logFile = join(dir, "kubelet.log");
  const proc = startProcess(
    "kubelet",
    join(nodeDir, "kubelet"),
    [
      `--config=${config}`,
      `--kubeconfig=${controlPlane.kubeconfigPath}`,
      `--container-runtime-endpoint=unix://${socket}`,
      `--root-dir=${root}`,
      `--cert-dir=${join(root, "pki")}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${GATEWAY_IP}`,
      "--v=1",
    ],
    { logFile },
  );
  await waitFor(proc, logFile, timeoutMs, async () => {
    const response = await fetch(`http://127.0.0.1:${healthz}/healthz`, {
      signal: AbortSignal.timeout(2_000),
    });
    return response.ok;
  });
  return proc;
}

async function waitNodeReady(controlPlane: ControlPlane, dir: string, timeoutMs: number): Promise<void> {
  const kubectl = join(controlPlane.assetsDir, "kubectl");
  await run(
    kubectl,
    [
      "--kubeconfig",
      controlPlane.kubeconfigPath,
      "wait",
      "--for=condition=Ready",
      `node/${NODE_NAME}`,
      `--timeout=${Math.round(timeoutMs / 1000)}s`,
    ],
    { timeout: timeoutMs + 10_000 },
  ).catch(async (error: unknown) => {
    // `kubectl wait` fails at once while the Node object does not exist yet
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const { stdout } = await run(kubectl, [
        "--kubeconfig",
        controlPlane.kubeconfigPath,
        "get",
        "node",
        NODE_NAME,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]).catch(() => ({ stdout: "" }));
      if (stdout.trim() === "True") return;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    throw new Error(`node ${NODE_NAME} not Ready (${String(error)}); logs in ${dir}`);
  });
}

// --- helpers -----------------------------------------------------------------------------

/** Polls `ready` until it says yes; fails fast, with the log's tail, when the process exits. */
async function waitFor(
  proc: ManagedProcess,
  logFile: string,
  timeoutMs: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const { exitCode, signalCode } = proc.child;
    if (exitCode !== null || signalCode !== null) {
      throw new Error(
        `${proc.name} exited (${signalCode ?? exitCode}) during start:\n${await tail(logFile, 30)}`,
      );
    }
    try {
      if (await ready()) return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${proc.name} not ready after ${timeoutMs} ms (${last}):\n${await tail(logFile, 30)}`);
}

async function tail(file: string, lines: number): Promise<string> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .slice(-lines - 1)
    .join("\n");
}

async function nodeLogs(dir: string, lines: number): Promise<string> {
  const parts: string[] = [];
  for (const name of ["containerd", "kubelet", "kube-proxy", "coredns"]) {
    parts.push(`--- ${name}.log (last ${lines} lines)\n${await tail(join(dir, `${name}.log`), lines)}`);
  }
  const { stdout } = await run("find", [join(dir, "pod-logs"), "-name", "*.log", "-type", "f"]).catch(() => ({
    stdout: "",
  }));
  for (const file of stdout.split("\n").filter(Boolean)) {
    parts.push(`--- ${file.slice(dir.length + 1)}\n${await tail(file, lines)}`);
  }
  return parts.join("\n");
}
