// The chart installed for real: a control plane with its controllers, a real node (containerd +
// runc, kubelet, kube-proxy, CoreDNS; node.ts), the project's image and the embedded Redis's image
// built with podman and imported into containerd, then `helm install` (embedded Redis), every pod
// Ready, the kind-smoke journey (publish → a verified signed POST → WebhookEvent SENT), `helm
// upgrade` with a changed value (a rolling update that never drops below the Ready replicas the
// PDB allows, and an eviction the PDB refuses), `helm rollback`, `helm uninstall` (CRDs kept).
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { chartDir, helm } from "../chart/helm.ts";
import {
  eventually,
  getJson,
  getWebhook,
  integrationYaml,
  listEvents,
  ready,
  webhookYaml,
} from "../e2e/k8s.ts";
import { runBuildScript } from "../env/build-script.ts";
import { type ControlPlane, startControlPlane } from "../env/control-plane.ts";
import { waitForWebhookAdmission } from "../env/install-crds.ts";
import { applyYaml, kubectl, useKubeconfig } from "../env/kubectl.ts";
import { buildImage } from "../image/podman.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type HostObservation, observeHost } from "./host-state.ts";
import { BRIDGE, GATEWAY_IP, NODE_NAME, type Node, startNode } from "./node.ts";

const run = promisify(execFile);
const RELEASE = "dfw";
const RELEASE_NS = "dataforce-system";
const APP_NS = "demo";
const FULLNAME = `${RELEASE}-dataforce-webhooks`;
const REDIS_IMAGE_SCRIPT = join(import.meta.dirname, "build-redis-image.sh");
/** Builds (cached: seconds; cold: many minutes), the node, image import. */
const SETUP_BUDGET_MS = 30 * 60_000;
/** `helm install/upgrade --wait`: pods start slowly on a shared 2-core machine. */
const HELM_WAIT = "8m";
const HELM_TIMEOUT_MS = 9 * 60_000;

let controlPlane: ControlPlane;
let node: Node;
let receiver: Receiver;
let imageRepository: string;
let imageTag: string;
let redisImage: string;
/** The host before the node started. */
let hostBefore: HostObservation;
const timings: string[] = [];

async function timed<T>(what: string, action: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await action();
  timings.push(`${what} ${((performance.now() - started) / 1000).toFixed(1)}s`);
  return result;
}

/** `podman save` of an image as an OCI archive (its name kept), imported into the node's containerd. */
async function loadImage(image: string): Promise<void> {
  const archive = join(node.dir, `${image.replace(/[^\w.-]+/g, "_")}.oci.tar`);
  await run("podman", ["save", "--format", "oci-archive", "-o", archive, image], { maxBuffer: 16 << 20 });
  await node.importImage(archive);
  await run("rm", ["-f", "--", archive]);
}

function helmArgs(args: readonly string[]): string[] {
  return [...args, "--kubeconfig", controlPlane.kubeconfigPath, "--namespace", RELEASE_NS];
}

/** Values for a node that pulls nothing: both images imported, never pulled. */
function installValues(): string[] {
  const [redisRepository, redisTag] = splitImage(redisImage);
  return [
    "--set",
    `image.repository=${imageRepository}`,
    "--set",
    `image.tag=${imageTag}`,
    "--set",
    "image.pullPolicy=Never",
    "--set",
    "redis.embedded.enabled=true",
    "--set",
    `redis.embedded.image.repository=${redisRepository}`,
    "--set",
    `redis.embedded.image.tag=${redisTag}`,
    "--set",
    "redis.embedded.image.pullPolicy=Never",
    // the test's receiver listens on the node's bridge gateway (a private address)
    "--set",
    `dispatcher.allowedDestinations={${GATEWAY_IP}/32}`,
  ];
}

function splitImage(image: string): [string, string] {
  const colon = image.lastIndexOf(":");
  return [image.slice(0, colon), image.slice(colon + 1)];
}

interface PodList {
  items: {
    metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
    spec: { nodeName?: string };
    status: { phase: string; conditions?: { type: string; status: string }[] };
  }[];
}

const podReady = (pod: PodList["items"][number]) =>
  pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

async function releasePods(): Promise<PodList["items"]> {
  return (await getJson<PodList>(["get", "pods", "-n", RELEASE_NS])).items;
}

interface Deployment {
  metadata: { generation: number; annotations?: Record<string, string> };
  spec: {
    replicas: number;
    template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } };
  };
  status: { readyReplicas?: number; updatedReplicas?: number; observedGeneration?: number };
}

const dispatcherDeployment = () =>
  getJson<Deployment>(["get", "deployment", `${FULLNAME}-dispatcher`, "-n", RELEASE_NS]);

function envOf(deployment: Deployment, name: string): string | undefined {
  return deployment.spec.template.spec.containers[0]?.env?.find((e) => e.name === name)?.value;
}

async function rolloutStatus(deployment: string): Promise<void> {
  await kubectl(["rollout", "status", `deployment/${deployment}`, "-n", RELEASE_NS, "--timeout=8m"], {
    timeoutMs: HELM_TIMEOUT_MS,
  });
}

beforeAll(async () => {
  const [image, redis] = await timed("images (podman, cached layers)", () =>
    Promise.all([buildImage(), runBuildScript(REDIS_IMAGE_SCRIPT)]),
  );
  // podman names a local image localhost/<name>; the archive keeps that name
  [imageRepository, imageTag] = splitImage(image.name.includes("/") ? image.name : `localhost/${image.name}`);
  redisImage = redis;
  controlPlane = await timed("control plane", () =>
    startControlPlane({ controllers: true, serviceAccountTokens: true }),
  );
  useKubeconfig(controlPlane.kubeconfigPath);
  hostBefore = await observeHost(BRIDGE);
  node = await timed("node Ready", () => startNode(controlPlane));
  await timed("images imported", async () => {
    for (const name of [`${imageRepository}:${imageTag}`, redisImage]) await loadImage(name);
  });
  receiver = await startReceiver(GATEWAY_IP);
}, SETUP_BUDGET_MS);

beforeEach(({ onTestFailed }) =>
  onTestFailed(async () => {
    console.log(await node?.logs());
    console.log((await kubectl(["get", "pods,events", "-A", "-o", "wide"], { allowFailure: true })).stdout);
  }),
);

afterAll(async () => {
  console.log(`helm on a node: ${timings.join(", ")}`);
  await receiver?.close();
  await node?.stop();
  useKubeconfig(undefined);
  await controlPlane?.stop();
}, 120_000);

describe("the chart on a real node", () => {
  it(
    "helm install (embedded Redis): every pod scheduled on the node, running and Ready",
    async () => {
      const installed = await timed("helm install --wait", () =>
        helm(
          helmArgs([
            "install",
            RELEASE,
            chartDir,
            "--create-namespace",
            ...installValues(),
            "--wait",
            "--timeout",
            HELM_WAIT,
          ]),
          HELM_TIMEOUT_MS,
        ),
      );
      expect(installed.code, installed.stderr).toBe(0);
      const pods = await releasePods();
      const byComponent = (component: string) =>
        pods.filter((pod) => pod.metadata.labels?.["app.kubernetes.io/component"] === component);
      expect(byComponent("operator")).toHaveLength(2);
      expect(byComponent("dispatcher")).toHaveLength(2);
      expect(byComponent("redis")).toHaveLength(1);
      for (const pod of pods) {
        expect(pod.spec.nodeName, pod.metadata.name).toBe(NODE_NAME);
        expect(pod.status.phase, pod.metadata.name).toBe("Running");
        expect(podReady(pod), pod.metadata.name).toBe(true);
      }
    },
    HELM_TIMEOUT_MS,
  );

  it("the kind-smoke journey: publish through the dispatcher's Service, a verified signed POST, the WebhookEvent SENT", async () => {
    // as a user's script after `helm install`: wait until the new admission policy admits Webhooks
    await waitForWebhookAdmission((args, input) => kubectl(args, { input, allowFailure: true }), "default");
    // applied, not created: a retried test finds the namespace there
    await applyYaml(stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: APP_NS } }));
    const signingSecret = `whsec_${randomBytes(32).toString("base64")}`;
    const integration = parse(integrationYaml(APP_NS)) as { spec: Record<string, unknown> };
    integration.spec.signingSecretRef = { name: "crm-signing", key: "secret" };
    await applyYaml(
      [
        stringify({
          apiVersion: "v1",
          kind: "Secret",
          metadata: {
            name: "crm-signing",
            namespace: APP_NS,
            labels: { "webhooks.dataforce.io/usage": "webhook" },
          },
          stringData: { secret: signingSecret },
        }),
        stringify(integration),
        webhookYaml(APP_NS, "crm", "job.created", receiver.url("/node/crm")),
      ].join("---\n"),
    );
    await eventually(async () => {
      expect(ready(await getWebhook(APP_NS, "crm"))).toMatchObject({ status: "True", reason: "Active" });
    }, 120_000);

    // a producer in the cluster would call the Service by name; the host reaches its ClusterIP
    // through kube-proxy's rules, like any client on a node
    const token = await eventually(async () => {
      const secret = await getJson<{ data: { token: string } }>([
        "get",
        "secret",
        "webhook-ingest-token",
        "-n",
        APP_NS,
      ]);
      return Buffer.from(secret.data.token, "base64").toString("utf8");
    }, 60_000);
    const service = await getJson<{ spec: { clusterIP: string; ports: { port: number }[] } }>([
      "get",
      "service",
      `${FULLNAME}-dispatcher`,
      "-n",
      RELEASE_NS,
    ]);
    const ingest = `http://${service.spec.clusterIP}:${service.spec.ports[0]!.port}/v1/events`;
    const event = { type: "job.created", namespace: APP_NS, id: "node-smoke-1", data: { jobId: "J-1" } };
    // the dispatcher refuses events until its routing holds the namespace: publish until accepted
    await eventually(async () => {
      const response = await fetch(ingest, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(event),
        signal: AbortSignal.timeout(5_000),
      });
      expect(response.status, await response.text()).toBeLessThan(300);
    }, 60_000);

    const [request] = await receiver.waitForRequests(1, "/node/crm", 60_000);
    const verified = new StandardWebhook(signingSecret).verify(
      request!.body,
      request!.headers as Record<string, string>,
    ) as { type: string; data: { jobId: string } };
    expect(verified).toMatchObject({ type: "job.created", data: { jobId: "J-1" } });
    await eventually(async () => {
      const [sent] = await listEvents(APP_NS, "webhooks.dataforce.io/phase=SENT");
      expect(sent?.spec).toMatchObject({ eventId: "node-smoke-1", webhook: "crm", payload: request!.body });
    }, 60_000);
  }, 300_000);

  it(
    "helm upgrade with a changed value: a rolling update that keeps the Ready replicas the PDB allows",
    async () => {
      const before = await dispatcherDeployment();
      expect(envOf(before, "DISPATCHER_LOG_LEVEL")).toBe("info");
      // sample the dispatcher's Ready replicas through the whole upgrade
      let sampling = true;
      const readyCounts: number[] = [];
      const sampler = (async () => {
        while (sampling) {
          const pods = (await releasePods().catch(() => [])).filter(
            (pod) => pod.metadata.labels?.["app.kubernetes.io/component"] === "dispatcher",
          );
          readyCounts.push(pods.filter((pod) => podReady(pod) && !pod.metadata.deletionTimestamp).length);
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      })();
      const upgraded = await timed("helm upgrade --wait", () =>
        helm(
          helmArgs([
            "upgrade",
            RELEASE,
            chartDir,
            ...installValues(),
            "--set",
            "dispatcher.logLevel=debug",
            "--wait",
            "--timeout",
            HELM_WAIT,
          ]),
          HELM_TIMEOUT_MS,
        ),
      );
      await rolloutStatus(`${FULLNAME}-dispatcher`);
      sampling = false;
      await sampler;
      expect(upgraded.code, upgraded.stderr).toBe(0);

      const after = await dispatcherDeployment();
      expect(envOf(after, "DISPATCHER_LOG_LEVEL")).toBe("debug");
      expect(after.metadata.generation).toBeGreaterThan(before.metadata.generation);
      expect(after.metadata.annotations?.["deployment.kubernetes.io/revision"]).toBe("2");
      expect(after.status).toMatchObject({ readyReplicas: 2, updatedReplicas: 2 });
      // a rolling update: pods were replaced (new names), never fewer Ready than replicas - maxUnavailable
      const pdb = await getJson<{ spec: { maxUnavailable: number } }>([
        "get",
        "pdb",
        `${FULLNAME}-dispatcher`,
        "-n",
        RELEASE_NS,
      ]);
      expect(pdb.spec.maxUnavailable).toBe(1);
      expect(Math.min(...readyCounts), readyCounts.join(",")).toBeGreaterThanOrEqual(
        2 - pdb.spec.maxUnavailable,
      );
      expect(readyCounts.length).toBeGreaterThan(0);
    },
    HELM_TIMEOUT_MS + 60_000,
  );

  it("the PDB is respected: with the node cordoned, a second dispatcher eviction is refused", async () => {
    const drain = await kubectl(
      [
        "drain",
        NODE_NAME,
        "--pod-selector=app.kubernetes.io/component=dispatcher",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=20s",
      ],
      { allowFailure: true, timeoutMs: 60_000 },
    );
    try {
      expect(drain.code).not.toBe(0);
      expect(`${drain.stdout}\n${drain.stderr}`).toMatch(/violate the pod's disruption budget/);
      const running = (await releasePods()).filter(
        (pod) =>
          pod.metadata.labels?.["app.kubernetes.io/component"] === "dispatcher" &&
          !pod.metadata.deletionTimestamp,
      );
      // one evicted (its replacement cannot be scheduled on the cordoned node), one kept by the PDB
      expect(running.filter(podReady)).toHaveLength(1);
    } finally {
      await kubectl(["uncordon", NODE_NAME]);
    }
    await rolloutStatus(`${FULLNAME}-dispatcher`);
  }, 600_000);

  it(
    "helm rollback: the previous values come back in another rolling update",
    async () => {
      const rolledBack = await timed("helm rollback --wait", () =>
        helm(helmArgs(["rollback", RELEASE, "1", "--wait", "--timeout", HELM_WAIT]), HELM_TIMEOUT_MS),
      );
      expect(rolledBack.code, rolledBack.stderr).toBe(0);
      await rolloutStatus(`${FULLNAME}-dispatcher`);
      const after = await dispatcherDeployment();
      expect(envOf(after, "DISPATCHER_LOG_LEVEL")).toBe("info");
      expect(after.status).toMatchObject({ readyReplicas: 2, updatedReplicas: 2 });
      const history = await helm(helmArgs(["history", RELEASE, "-o", "json"]));
      const revisions = JSON.parse(history.stdout) as {
        revision: number;
        status: string;
        description: string;
      }[];
      expect(revisions.at(-1)).toMatchObject({
        revision: 3,
        status: "deployed",
        description: "Rollback to 1",
      });
    },
    HELM_TIMEOUT_MS + 60_000,
  );

  it(
    "helm uninstall: the release's objects and pods go, the CRDs and the custom resources stay",
    async () => {
      const uninstalled = await timed("helm uninstall --wait", () =>
        helm(helmArgs(["uninstall", RELEASE, "--wait", "--timeout", "5m"]), 6 * 60_000),
      );
      expect(uninstalled.code, uninstalled.stderr).toBe(0);
      await eventually(async () => expect(await releasePods()).toEqual([]), 120_000, 1_000);
      const deployments = await getJson<{ items: unknown[] }>(["get", "deployments", "-n", RELEASE_NS]);
      expect(deployments.items).toEqual([]);
      for (const crd of [
        "webhookintegrations.webhooks.dataforce.io",
        "webhooks.webhooks.dataforce.io",
        "webhookevents.webhooks.dataforce.io",
      ]) {
        expect((await kubectl(["get", "crd", crd], { allowFailure: true })).code, crd).toBe(0);
      }
      expect((await getWebhook(APP_NS, "crm")).metadata.name).toBe("crm");
      expect((await listEvents(APP_NS)).length).toBeGreaterThan(0);
    },
    7 * 60_000,
  );

  it("stopping the node puts the host back: sysctls, iptables chains, the bridge, cgroups, mounts, the lock", async () => {
    const during = await observeHost(BRIDGE);
    // what the node had changed (so that the comparison below means something)
    expect(during.bridge).toBe(true);
    expect(during.chains.join("\n")).toMatch(/KUBE-FIREWALL/);
    expect(during.chains.join("\n")).toMatch(/DFW-NODE-API/);
    expect(during.nodeMounts).toBeGreaterThan(0);
    expect(during.lockHeld).toBe(true);
    const changed = Object.keys(during.sysctls).filter((k) => during.sysctls[k] !== hostBefore.sysctls[k]);
    console.log(`helm on a node: sysctls the node had changed: ${changed.join(", ") || "none"}`);
    await timed("node stop", () => node.stop());
    expect(await observeHost(BRIDGE)).toEqual(hostBefore);
  }, 120_000);

  it("a run killed with SIGKILL leaves its changes behind; the next node cleans them up first", async () => {
    // start-node.ts: a control plane and a node of its own, in a process that is then killed
    const child = spawn(process.execPath, [join(import.meta.dirname, "start-node.ts")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      await eventually(() => expect(output).toMatch(/Ready in/), 180_000, 500);
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const left = await observeHost(BRIDGE);
    expect(left).toMatchObject({ lockHeld: true, bridge: true });
    expect(left.chains.join("\n")).toMatch(/KUBE-FIREWALL/);
    expect(left.nodeMounts).toBeGreaterThan(0);

    const next = await timed("node start after a dead run", () => startNode(controlPlane));
    await next.stop();
    expect(await observeHost(BRIDGE)).toEqual(hostBefore);
  }, 300_000);
});
