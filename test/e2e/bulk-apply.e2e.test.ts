// A bulk apply of many Webhooks into one namespace: the integration's reconciles (each compiles
// the namespace's whole routing) must not grow with the number of Webhooks applied at once.
// A count, not a timing: the integration controller coalesces the namespace's changes.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { applyYaml } from "../env/kubectl.ts";
import { type E2eWorld, type OperatorProcess, setupWorld } from "./harness.ts";
import { eventually, getIntegration, integrationYaml, ready, webhookYaml } from "./k8s.ts";

let world: E2eWorld;
let operator: OperatorProcess;

beforeAll(async () => {
  world = await setupWorld("bulk", ["bulk"]);
  operator = await world.startOperator("op-bulk");
});
beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));
afterAll(async () => {
  await world?.teardown();
});

/** controller_runtime_reconcile_total of one controller, all results. */
async function reconciles(controller: string): Promise<number> {
  const metrics = await operator.metrics();
  let total = 0;
  for (const match of metrics.matchAll(
    new RegExp(`^controller_runtime_reconcile_total\\{[^}]*controller="${controller}"[^}]*\\} (\\d+)`, "gm"),
  ))
    total += Number(match[1]);
  return total;
}

describe("a bulk apply of 200 Webhooks", () => {
  it("reconciles the namespace's integration a bounded number of times, not once per Webhook", async () => {
    const ns = world.namespaces.bulk!;
    await applyYaml(integrationYaml(ns));
    await eventually(async () => expect(ready(await getIntegration(ns))).toMatchObject({ status: "True" }));
    const before = await reconciles("webhookintegration");
    const count = 200;
    const manifests = Array.from({ length: count }, (_, i) =>
      webhookYaml(ns, `hook-${String(i).padStart(3, "0")}`, "job.created", `http://127.0.0.1:9/hook-${i}`),
    );
    await applyYaml(manifests.join("---\n"));
    await eventually(async () => {
      const integration = await getIntegration(ns);
      expect(integration.status?.activeWebhooks).toBe(count);
    }, 60_000);
    const integrationReconciles = (await reconciles("webhookintegration")) - before;
    console.log(`bulk apply of ${count} Webhooks: ${integrationReconciles} integration reconciles`);
    // one per Webhook would be 200 and more; coalesced, it was 11 (20 without the half-second delay)
    expect(integrationReconciles).toBeLessThan(count / 8);
  });
});
