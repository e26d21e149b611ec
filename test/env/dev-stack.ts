import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { generateEncryptionKey } from "../../contract/secret-box.ts";
import { SECRET_USAGE_LABEL, SECRET_USAGE_VALUE } from "../../operator/api/v1alpha1/index.ts";
import { type DemoReceiver, startDemoReceiver } from "./demo-receiver.ts";
import { installCrds } from "./install-crds.ts";
import { freePort } from "./ports.ts";
import { type ManagedProcess, startProcess } from "./process.ts";

const run = promisify(execFile);
const repo = join(import.meta.dirname, "..", "..");
const node = process.execPath; // Node 24: `make dev` runs through npm, which puts node_modules/.bin first

/** The demo account: namespace, its signing secret, and the webhook the samples describe. */
export const DEMO_NAMESPACE = "demo";
export const DEMO_WEBHOOK = "crm-appointments";

export interface DevStackOptions {
  kubeconfig: string;
  redisUrl: string;
  /** kubectl to drive the cluster with. */
  kubectlBin: string;
  /** Where process logs go. */
  logDir?: string;
  /** The demo account's namespace (default `demo`). */
  namespace?: string;
  /**
   * The namespaces the operator watches (default: every namespace, as the chart's default, so
   * that anything applied to the dev cluster is reconciled). Tests sharing one cluster with other
   * suites' operators name theirs.
   */
  watchNamespaces?: readonly string[];
  /** More dispatcher settings (e.g. a PostgreSQL store for the dashboard picture). */
  dispatcherEnv?: Readonly<Record<string, string>>;
}

export interface DevStack {
  readonly namespace: string;
  readonly dispatcherUrl: string;
  readonly operatorUrl: string;
  readonly ingestToken: string;
  readonly adminToken: string;
  readonly receiver: DemoReceiver;
  readonly logDir: string;
  kubectl(args: readonly string[], input?: string): Promise<string>;
  /** POSTs one event to the ingest API and returns its id. */
  publish(type: string, data: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
}

/**
 * The two processes of the product (dispatcher and operator) against a cluster and a
 * Redis, plus a demo receiver on 127.0.0.1, the CRDs and a demo account whose webhook
 * points at the receiver. `make dev` runs it on the local control plane; the e2e test
 * of `make dev` runs it on the test run's cluster.
 */
export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const namespace = options.namespace ?? DEMO_NAMESPACE;
  const logDir = options.logDir ?? (await mkdtemp(join(tmpdir(), "dataforce-dev-")));
  const kubectl = async (args: readonly string[], input?: string) => {
    const child = run(options.kubectlBin, ["--kubeconfig", options.kubeconfig, ...args], {
      maxBuffer: 16 << 20,
    });
    if (input !== undefined) child.child.stdin?.end(input);
    return (await child).stdout;
  };
  const processes: ManagedProcess[] = [];
  const secret = `whsec_${randomBytes(24).toString("base64")}`;
  const receiver = await startDemoReceiver({ secret });
  const ingestToken = `dev-ingest-${randomBytes(12).toString("hex")}`;
  const adminToken = `dev-admin-${randomBytes(12).toString("hex")}`;

  const stop = async () => {
    await Promise.all(processes.map((p) => p.stop(15_000)));
    await receiver.stop();
  };

  try {
    await installCrds(options.kubectlBin, options.kubeconfig);

    // the key that seals the routing's secrets in Redis, new for every run (a routing left by an
    // earlier run does not open with it and is rewritten by the operator)
    const encryptionKeys = generateEncryptionKey("dev");
    const dispatcherPort = await freePort();
    processes.push(
      startProcess("dispatcher", node, [join(repo, "dispatcher", "main.ts")], {
        logFile: join(logDir, "dispatcher.log"),
        env: {
          ...process.env,
          DISPATCHER_REDIS_URL: options.redisUrl,
          DISPATCHER_HOST: "127.0.0.1",
          DISPATCHER_PORT: String(dispatcherPort),
          DISPATCHER_INGEST_TOKENS: ingestToken,
          DISPATCHER_ADMIN_TOKENS: adminToken,
          DISPATCHER_ENCRYPTION_KEYS: encryptionKeys,
          // The demo receiver is on loopback, which the dispatcher refuses unless allowed.
          DISPATCHER_ALLOWED_DESTINATIONS: "127.0.0.1/32",
          ...options.dispatcherEnv,
        },
      }),
    );
    const operatorPort = await freePort();
    // apply, not create: idempotent on a cluster that has it, and any other error surfaces
    await kubectl(["apply", "-f", "-"], namespaceManifest("dataforce-system"));
    processes.push(
      startProcess("operator", node, [join(repo, "operator", "main.ts")], {
        logFile: join(logDir, "operator.log"),
        env: {
          ...process.env,
          KUBECONFIG: options.kubeconfig,
          OPERATOR_REDIS_URL: options.redisUrl,
          OPERATOR_ENCRYPTION_KEYS: encryptionKeys,
          OPERATOR_HOST: "127.0.0.1",
          OPERATOR_PORT: String(operatorPort),
          OPERATOR_LEASE_NAMESPACE: "dataforce-system",
          OPERATOR_LEASE_NAME: `dataforce-dev-${namespace}`,
          OPERATOR_WATCH_NAMESPACES: options.watchNamespaces?.join(",") ?? "",
          POD_NAME: `dev-operator-${process.pid}`,
        },
      }),
    );
    const dispatcherUrl = `http://127.0.0.1:${dispatcherPort}`;
    const operatorUrl = `http://127.0.0.1:${operatorPort}`;
    await Promise.all([
      waitReady(`${dispatcherUrl}/readyz`, logDir),
      waitReady(`${operatorUrl}/readyz`, logDir),
    ]);

    await kubectl(["apply", "-f", "-"], namespaceManifest(namespace));
    await kubectl(["apply", "-f", "-"], demoAccount(namespace, secret, receiver.url));
    // Ready means the operator wrote the routing to Redis; dispatchers apply it on the
    // change notification, or at the latest after their one-second poll.
    await kubectl([
      "wait",
      "--for=condition=Ready",
      "--timeout=60s",
      "-n",
      namespace,
      `webhook/${DEMO_WEBHOOK}`,
    ]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    const publish = async (type: string, data: Record<string, unknown>) => {
      const response = await fetch(`${dispatcherUrl}/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${ingestToken}`, "content-type": "application/json" },
        body: JSON.stringify({ type, namespace, data }),
      });
      const body = (await response.json()) as { id?: string; message?: string };
      if (response.status !== 202 || body.id === undefined)
        throw new Error(`publish failed: ${response.status} ${body.message ?? ""}`);
      return body.id;
    };
    return {
      namespace,
      dispatcherUrl,
      operatorUrl,
      ingestToken,
      adminToken,
      receiver,
      logDir,
      kubectl,
      publish,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function namespaceManifest(name: string): string {
  return JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
}

/** The demo account as YAML: the samples' integration and webhook, pointed at the receiver. */
function demoAccount(namespace: string, secret: string, receiverUrl: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "List",
    items: [
      {
        apiVersion: "v1",
        kind: "Secret",
        // the consent label: without it the operator does not read a Secret
        metadata: {
          name: "demo-signing-secret",
          namespace,
          labels: { [SECRET_USAGE_LABEL]: SECRET_USAGE_VALUE },
        },
        stringData: { secret },
      },
      {
        apiVersion: "webhooks.dataforce.io/v1alpha1",
        kind: "WebhookIntegration",
        metadata: { name: "default", namespace },
        spec: {
          enabled: true,
          signingSecretRef: { name: "demo-signing-secret", key: "secret" },
          destinationPolicy: { allowPlainHTTP: true }, // the receiver is plain http on 127.0.0.1
        },
      },
      {
        apiVersion: "webhooks.dataforce.io/v1alpha1",
        kind: "Webhook",
        metadata: { name: DEMO_WEBHOOK, namespace },
        spec: { event: "appointment.completed", url: receiverUrl, displayName: "Demo receiver" },
      },
    ],
  });
}

async function waitReady(url: string, logDir: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${url} not ready after 60s; see the logs in ${logDir}`);
}
