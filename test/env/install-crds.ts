import { execFile } from "node:child_process";
import { join } from "node:path";
import { CRDS, GROUP } from "../../operator/api/v1alpha1/index.ts";

const repo = join(import.meta.dirname, "..", "..");

/**
 * `kubectl apply -f crds/` as a user runs it, then waits until the API is usable: the
 * CRDs Established, and the destination admission policy able to resolve its parameter
 * kind (until then it refuses every Webhook with "failed to configure policy"). A
 * server-side dry run of a Webhook passing is the signal.
 */
export async function installCrds(
  kubectlBin: string,
  kubeconfig: string,
  probeNamespace = "default",
): Promise<void> {
  const kubectl: RunKubectl = (args, input) =>
    new Promise((resolve) => {
      const child = execFile(kubectlBin, ["--kubeconfig", kubeconfig, ...args], (error, _stdout, stderr) =>
        resolve({ code: error ? 1 : 0, stderr }),
      );
      child.stdin?.end(input ?? "");
    });
  const must = async (args: readonly string[]) => {
    const result = await kubectl(args);
    if (result.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${result.stderr}`);
  };
  await must(["apply", "--server-side", "--force-conflicts", "-f", join(repo, "crds")]);
  await must([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    ...CRDS.map((c) => `crd/${c.plural}.${GROUP}`),
  ]);
  await waitForWebhookAdmission(kubectl, probeNamespace);
}

/** Runs kubectl with `args` (and `input` on stdin); resolves with its exit code and stderr. */
export type RunKubectl = (
  args: readonly string[],
  input?: string,
) => Promise<{ code: number; stderr: string }>;

/**
 * Waits until the API server admits a Webhook (a server-side dry run in `namespace`): right after
 * the CRDs and the destination admission policy are created, the policy cannot resolve its
 * parameter kind for up to 30 s and refuses every Webhook (the README's failure modes). A user's
 * script, or a GitOps tool, waits or retries the same way.
 */
export async function waitForWebhookAdmission(kubectl: RunKubectl, namespace: string): Promise<void> {
  const probe = JSON.stringify({
    apiVersion: `${GROUP}/v1alpha1`,
    kind: "Webhook",
    metadata: { name: "admission-probe", namespace },
    spec: { event: "job.created", url: "https://probe.example/hook" },
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const result = await kubectl(["create", "--dry-run=server", "-f", "-"], probe);
    if (result.code === 0) return;
    if (Date.now() > deadline) throw new Error(`Webhooks are still not admitted: ${result.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
