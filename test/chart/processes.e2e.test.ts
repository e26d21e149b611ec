// The chart's wiring with the real processes, short of containers: the Secrets, ServiceAccounts
// and RBAC objects the chart renders are applied to the run's API server; the operator and the
// dispatcher are started with the environment the chart gives their containers (Secret values
// read back from the API server) and the operator authenticates as the chart's ServiceAccount.
// Then: the probes the chart configures answer, the operator takes the chart's Lease, the kind
// workflow's smoke script publishes an event, and a WebhookEvent reaches SENT — what
// `make kind-smoke` checks on a real cluster.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { applyYaml, createTestNamespace, kubectl, type TestNamespace } from "../env/kubectl.ts";
import { freePort } from "../env/ports.ts";
import { type ManagedProcess, startProcess } from "../env/process.ts";
import { chartDir, helm, helmBin, type K8sObject, renderChart, repoRoot } from "./helm.ts";

const run = promisify(execFile);
const NODE = join(repoRoot, "node_modules", ".bin", "node");
const CRDS = ["webhookintegrations", "webhooks", "webhookevents"].map((p) => `${p}.webhooks.dataforce.io`);

type EnvVar = {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
};

/** The kind workflow's smoke publisher, as the Makefile defines it (KIND_SMOKE_JS). */
function kindSmokeScript(): string {
  const makefile = readFileSync(join(repoRoot, "Makefile"), "utf8").replace(/\\\n\s*/g, " ");
  const line = makefile.split("\n").find((l) => l.startsWith("KIND_SMOKE_JS = "));
  if (!line) throw new Error("KIND_SMOKE_JS is not defined in the Makefile");
  return line.slice("KIND_SMOKE_JS = ".length);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

async function httpStatus(url: string): Promise<number | undefined> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await response.body?.cancel();
  return response.status;
}

describe("the processes started as the chart starts them", () => {
  const suffix = randomBytes(3).toString("hex");
  const release = `run-${suffix}`;
  let ns: TestNamespace;
  let objects: K8sObject[];
  let logDir: string;
  let receiver: Server;
  const received: Array<{ headers: Record<string, unknown>; body: string }> = [];
  const processes: ManagedProcess[] = [];
  const clusterScoped: string[] = [];
  let dispatcherPort: number;
  let operatorPort: number;
  let dispatcherMetricsPort: number;
  let sets: Record<string, string>;

  const deployment = (component: string) =>
    objects.find((o) => o.kind === "Deployment" && o.metadata.name.endsWith(`-${component}`)) as K8sObject;
  const containerOf = (component: string) => deployment(component).spec.template.spec.containers[0];

  /** The container's environment as the kubelet would resolve it (Secrets read from the API server). */
  async function resolvedEnv(component: string): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    for (const entry of containerOf(component).env as EnvVar[]) {
      const ref = entry.valueFrom?.secretKeyRef;
      const field = entry.valueFrom?.fieldRef?.fieldPath;
      if (entry.value !== undefined) env[entry.name] = entry.value;
      else if (ref) {
        const secret = JSON.parse(
          (await kubectl(["get", "secret", ref.name, "-n", ns.name, "-o", "json"])).stdout,
        );
        env[entry.name] = Buffer.from(secret.data[ref.key], "base64").toString();
      } else if (field === "metadata.name")
        env[entry.name] = `${deployment(component).metadata.name}-7d9f8-x2x9q`;
      else if (field === "metadata.namespace") env[entry.name] = ns.name;
      else throw new Error(`cannot resolve ${entry.name}`);
    }
    return env;
  }

  /** A kubeconfig for the chart's operator ServiceAccount (TokenRequest), bound by the chart's RBAC. */
  async function operatorKubeconfig(): Promise<string> {
    const sa = deployment("operator").spec.template.spec.serviceAccountName;
    const token = (await kubectl(["create", "token", sa, "-n", ns.name, "--duration=1h"])).stdout.trim();
    const admin = parse(readFileSync(inject("kubeconfig"), "utf8")) as {
      clusters: Array<{ cluster: unknown }>;
    };
    const path = join(logDir, "operator.kubeconfig");
    const user = `system:serviceaccount:${ns.name}:${sa}`;
    await writeFile(
      path,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "test", cluster: admin.clusters[0]?.cluster }],
        users: [{ name: user, user: { token } }],
        contexts: [{ name: "operator", context: { cluster: "test", user } }],
        "current-context": "operator",
      }),
      { mode: 0o600 },
    );
    return path;
  }

  /** Runs NOTES.txt's TOKEN=… command for `namespace`; undefined until the token exists. */
  async function notesToken(namespace: string): Promise<string | undefined> {
    const args = ["install", release, chartDir, "--namespace", ns.name, "--dry-run=client"];
    for (const [key, value] of Object.entries(sets)) args.push("--set", `${key}=${value}`);
    const result = await helm(args);
    expect(result.code, result.stderr).toBe(0);
    const notes = result.stdout.slice(result.stdout.indexOf("NOTES:"));
    const command = notes.split("\n").find((line) => line.trim().startsWith("TOKEN=$(kubectl"));
    expect(command).toBeDefined();
    const kubectlBin = join(inject("assetsDir"), "kubectl");
    const script = `set -o pipefail\nkubectl() { "${kubectlBin}" --kubeconfig "${inject("kubeconfig")}" "$@"; }\n${command?.trim().replace("<your namespace>", namespace)}\nprintf %s "$TOKEN"`;
    const output = await run("bash", ["-c", script]).catch(() => undefined);
    return output?.stdout || undefined;
  }

  beforeAll(async () => {
    await helmBin();
    await kubectl(["apply", "--server-side", "-f", join(chartDir, "crds")]);
    await kubectl(["wait", "--for=condition=Established", "--timeout=60s", ...CRDS.map((n) => `crd/${n}`)]);
    logDir = await mkdtemp(join(tmpdir(), "dfw-chart-run-"));
    ns = await createTestNamespace("chart-run");
    receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => {
        body += chunk;
      });
      req.on("end", () => {
        received.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    [dispatcherPort, operatorPort, dispatcherMetricsPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    sets = {
      "redis.url": inject("redisUrl"),
      "redis.keyTag": `chart-run-${suffix}`,
      "dispatcher.port": String(dispatcherPort),
      "dispatcher.metricsPort": String(dispatcherMetricsPort),
      "operator.port": String(operatorPort),
      "operator.watchNamespaces": `{${ns.name}}`, // the run's API server is shared
      "dispatcher.allowedDestinations": "{127.0.0.1/32}", // the receiver is on loopback
    };
    objects = await renderChart({ namespace: ns.name, releaseName: release, set: sets });
    // Everything but the workloads (no kubelet here) and the cluster-wide admission policy.
    const applied = objects.filter(
      (o) =>
        !["Deployment", "Service", "PodDisruptionBudget"].includes(o.kind) &&
        !o.kind.startsWith("ValidatingAdmissionPolicy"),
    );
    // watchNamespaces is set: the operator's ClusterRole is bound in that namespace only
    expect(applied.map((o) => o.kind).sort()).toEqual([
      "ClusterRole",
      "NetworkPolicy",
      "NetworkPolicy",
      "Role",
      "RoleBinding",
      "RoleBinding",
      "Secret",
      "Secret",
      "Secret",
      "ServiceAccount",
      "ServiceAccount",
    ]);
    for (const o of applied) if (!o.metadata.namespace) clusterScoped.push(`${o.kind}/${o.metadata.name}`);
    await applyYaml(applied.map((o) => stringify(o)).join("---\n"));
    return async () => {
      await Promise.all(processes.map((p) => p.stop()));
      await new Promise((resolve) => receiver.close(resolve));
      if (clusterScoped.length > 0) await kubectl(["delete", "--ignore-not-found", ...clusterScoped]);
      await ns.delete();
    };
  }, 900_000);

  it("the dispatcher answers the chart's probes and serves /metrics on the metrics port", async () => {
    const env = await resolvedEnv("dispatcher");
    processes.push(
      startProcess("dispatcher", NODE, [join(repoRoot, "dispatcher", "main.ts")], {
        logFile: join(logDir, "dispatcher.log"),
        cwd: repoRoot,
        env: { ...process.env, ...env },
      }),
    );
    const container = containerOf("dispatcher");
    expect(container.ports[0].containerPort).toBe(dispatcherPort);
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      const url = `http://127.0.0.1:${dispatcherPort}${probe.httpGet.path}`;
      await until(`${url} → 200`, async () => ((await httpStatus(url)) === 200 ? true : undefined));
    }
    // /metrics on the chart's metrics port (what the ServiceMonitor scrapes), not on the API port
    const metricsPort = container.ports.find(
      (port: { name: string }) => port.name === "metrics",
    )?.containerPort;
    expect(metricsPort).toBe(dispatcherMetricsPort);
    expect(await httpStatus(`http://127.0.0.1:${metricsPort}/metrics`)).toBe(200);
    expect(await httpStatus(`http://127.0.0.1:${dispatcherPort}/metrics`)).toBe(404);
  });

  it("binds the operator's rights in the watched namespace only", async () => {
    const sa = deployment("operator").spec.template.spec.serviceAccountName;
    const user = `system:serviceaccount:${ns.name}:${sa}`;
    const canI = async (verb: string, resource: string, namespace: string) =>
      (
        await kubectl(["auth", "can-i", verb, resource, "-n", namespace, "--as", user], {
          allowFailure: true,
        })
      ).stdout.trim();
    expect(await canI("list", "secrets", ns.name)).toBe("yes");
    expect(await canI("create", "webhookevents.webhooks.dataforce.io", ns.name)).toBe("yes");
    expect(await canI("list", "secrets", "default")).toBe("no");
    expect(await canI("get", "secrets", "kube-system")).toBe("no");
  });

  it("the operator, as the chart's ServiceAccount, leads and generates the namespace's ingest token that NOTES.txt reads; the kind smoke script's event becomes a SENT WebhookEvent", async () => {
    const env = await resolvedEnv("operator");
    processes.push(
      startProcess("operator", NODE, [join(repoRoot, "operator", "main.ts")], {
        logFile: join(logDir, "operator.log"),
        cwd: repoRoot,
        env: { ...process.env, ...env, KUBECONFIG: await operatorKubeconfig() },
      }),
    );
    const container = containerOf("operator");
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      const url = `http://127.0.0.1:${operatorPort}${probe.httpGet.path}`;
      await until(`${url} → 200`, async () => ((await httpStatus(url)) === 200 ? true : undefined), 60_000);
    }
    const lease = await until("the chart's Lease", async () => {
      const result = await kubectl(
        ["get", "lease", env.OPERATOR_LEASE_NAME as string, "-n", ns.name, "-o", "json"],
        {
          allowFailure: true,
        },
      );
      return result.code === 0 ? JSON.parse(result.stdout) : undefined;
    });
    expect(lease.spec.holderIdentity).toBe(env.POD_NAME);

    const port = (receiver.address() as AddressInfo).port;
    await applyYaml(
      [
        {
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "WebhookIntegration",
          metadata: { name: "default", namespace: ns.name },
          spec: { enabled: true, destinationPolicy: { allowPlainHTTP: true } },
        },
        {
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "Webhook",
          metadata: { name: "demo-jobs", namespace: ns.name },
          spec: { event: "job.created", url: `http://127.0.0.1:${port}/hooks/jobs` },
        },
      ]
        .map((o) => stringify(o))
        .join("---\n"),
    );
    await until(
      "Webhook Ready",
      async () => {
        const { stdout } = await kubectl([
          "get",
          "webhook",
          "demo-jobs",
          "-n",
          ns.name,
          "-o",
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return stdout === "True" ? true : undefined;
      },
      60_000,
    );
    // NOTES.txt's command, for this namespace, reads the token the operator generated
    const token = await until("the namespace's ingest token", () => notesToken(ns.name), 30_000);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const dispatcherEnv = await resolvedEnv("dispatcher");
    const smoke = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = startProcess("kind-smoke", NODE, ["-e", kindSmokeScript(), "--", token, ns.name], {
        logFile: join(logDir, "kind-smoke.log"),
        env: { ...process.env, ...dispatcherEnv },
      });
      child.child.on("exit", (code) =>
        resolve({ code, out: readFileSync(join(logDir, "kind-smoke.log"), "utf8") }),
      );
    });
    expect(smoke.code, smoke.out).toBe(0);
    expect(smoke.out).toMatch(/^202 /);
    // What `make kind-smoke` waits for.
    const sent = await until(
      "a SENT WebhookEvent",
      async () => {
        const { stdout } = await kubectl([
          "get",
          "webhookevents",
          "-n",
          ns.name,
          "-l",
          "webhooks.dataforce.io/phase=SENT",
          "-o",
          "name",
        ]);
        return stdout.trim() || undefined;
      },
      60_000,
    );
    expect(sent).toMatch(/^webhookevent\.webhooks\.dataforce\.io\//);
    expect(received).toHaveLength(1);
    expect(JSON.parse(received[0]?.body ?? "{}")).toMatchObject({ type: "job.created" });
    expect(received[0]?.headers["webhook-signature"]).toMatch(/^v1,/);
  }, 180_000);
});
