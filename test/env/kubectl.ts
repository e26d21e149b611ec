/**
 * Helpers for e2e tests against the run's control plane (see cluster-global-setup.ts).
 * The kubeconfig and the kubectl binary come from `inject()`, so these work in any
 * `*.e2e.test.ts` file and in modules it imports.
 *
 *   const ns = await createTestNamespace("webhook-status");
 *   onTestFinished(() => ns.delete());
 *   await applyYaml(manifest, { namespace: ns.name });
 *   const { stdout } = await kubectl(["get", "webhooks", "-n", ns.name, "-o", "json"]);
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { inject } from "vitest";
import "./provided-context.ts";

export interface KubectlResult {
  stdout: string;
  stderr: string;
  /** Exit code (or -1 when killed by a signal or the timeout). */
  code: number;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `-f -`). */
  input?: string;
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean;
  /** Default 60 s; kubectl is killed after it. */
  timeoutMs?: number;
}

let kubeconfigOverride: string | undefined;

/**
 * Points these helpers (and test/e2e/harness.ts) at another API server than the run's, for the
 * rest of the test file: a fault test that restarts the API server or etcd runs its own control
 * plane so that files running beside it never see the outage. `undefined` goes back to the run's.
 */
export function useKubeconfig(path: string | undefined): void {
  kubeconfigOverride = path;
}

/** The admin kubeconfig these helpers use: the run's, unless useKubeconfig said otherwise. */
export function adminKubeconfig(): string {
  return kubeconfigOverride ?? inject("kubeconfig");
}

/** Runs the run's kubectl as cluster admin: `kubectl --kubeconfig <run kubeconfig> ...args`. */
export function kubectl(args: readonly string[], options: KubectlOptions = {}): Promise<KubectlResult> {
  const bin = join(inject("assetsDir"), "kubectl");
  const fullArgs = ["--kubeconfig", adminKubeconfig(), ...args];
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, fullArgs, { stdio: ["pipe", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.stdin.on("error", () => {}); // kubectl may exit before reading all input
    child.stdin.end(options.input ?? "");
    child.on("error", reject);
    child.on("close", (exitCode, signal) => {
      const code = exitCode ?? -1;
      if (code === 0 || options.allowFailure) {
        resolve({ stdout, stderr, code });
        return;
      }
      const why =
        signal === null ? `exited with ${code}` : `was killed by ${signal} (timeout ${timeoutMs} ms?)`;
      reject(new Error(`kubectl ${args.join(" ")} ${why}\n${stderr.trim() || stdout.trim()}`));
    });
  });
}

/**
 * `kubectl apply -f -` for one or more YAML documents; returns kubectl's output.
 * Server-side apply by default (field manager `dataforce-e2e`), as GitOps tools do.
 */
export async function applyYaml(
  yaml: string,
  options: { namespace?: string; serverSide?: boolean } = {},
): Promise<string> {
  const args = ["apply", "-f", "-"];
  if (options.serverSide ?? true) args.push("--server-side", "--field-manager=dataforce-e2e");
  if (options.namespace) args.push("--namespace", options.namespace);
  return (await kubectl(args, { input: yaml })).stdout;
}

export interface TestNamespace {
  readonly name: string;
  /** Deletes the namespace without waiting (see deleteNamespace). */
  delete(): Promise<void>;
}

/**
 * Creates a namespace named `<prefix>-<random>` (labelled `dataforce.io/e2e=true`), so
 * tests sharing the run's API server never see each other's objects.
 */
export async function createTestNamespace(prefix: string): Promise<TestNamespace> {
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 50);
  const name = `${base || "test"}-${randomBytes(4).toString("hex")}`;
  const manifest = {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: { "dataforce.io/e2e": "true" } },
  };
  await kubectl(["create", "-f", "-"], { input: JSON.stringify(manifest) });
  return { name, delete: () => deleteNamespace(name) };
}

/**
 * Deletes a namespace without waiting. The run's control plane has no kube-controller-manager,
 * so there the namespace stays `Terminating` with its objects until the run ends; unique names
 * keep that harmless.
 */
export async function deleteNamespace(name: string): Promise<void> {
  await kubectl(["delete", "namespace", name, "--wait=false", "--ignore-not-found"]);
}

/** A @kubernetes/client-node KubeConfig for the run's API server (cluster admin). */
export function kubeClient(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(adminKubeconfig());
  return config;
}
