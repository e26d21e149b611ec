// What a real cluster's controllers do with the objects the operator creates (issue 12, item 2):
// this file runs its own control plane with kube-controller-manager and kube-scheduler, so owner
// references are followed by the garbage collector and namespaces terminate, as the README says.
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../env/control-plane.ts";
import { installCrds } from "../env/install-crds.ts";
import { applyYaml, kubectl, useKubeconfig } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type E2eWorld, setupWorld } from "./harness.ts";
import {
  eventually,
  getIntegration,
  integrationYaml,
  listEvents,
  ready,
  routingLive,
  webhookYaml,
} from "./k8s.ts";

let controlPlane: ControlPlane | undefined;
let world: E2eWorld;
let receiver: Receiver;

beforeAll(async () => {
  controlPlane = await startControlPlane({ assetsDir: inject("assetsDir"), controllers: true });
  await installCrds(join(inject("assetsDir"), "kubectl"), controlPlane.kubeconfigPath);
  useKubeconfig(controlPlane.kubeconfigPath);
  world = await setupWorld("gc", ["owners", "doomed"]);
  receiver = await startReceiver();
  await world.startOperator("op-gc");
}, 180_000);

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
  useKubeconfig(undefined);
  await controlPlane?.stop();
});

/** Whether `kubectl get` finds the object (any error but NotFound fails the test). */
async function exists(args: readonly string[]): Promise<boolean> {
  const result = await kubectl(["get", ...args, "-o", "name"], { allowFailure: true });
  if (result.code === 0) return true;
  expect(result.stderr).toContain("NotFound");
  return false;
}

describe("with kube-controller-manager running", () => {
  it("deleting a Webhook deletes its WebhookEvents; deleting the integration deletes its generated signing Secret", async () => {
    const ns = world.namespaces.owners!;
    const path = "/gc/crm";
    await applyYaml(
      [integrationYaml(ns), webhookYaml(ns, "crm", "job.created", receiver.url(path))].join("\n---\n"),
    );
    await eventually(async () => {
      const integration = await getIntegration(ns);
      expect(ready(integration)).toMatchObject({ status: "True" });
      expect(integration.status?.signingSecretName).toBe("webhook-signing-secret");
    });
    await routingLive(world, ns, (routing) => routing?.webhooks.length === 1);
    for (const id of ["gc-1", "gc-2"]) {
      await world.dispatcher.publish({ type: "job.created", namespace: ns, id, data: { id } });
    }
    await receiver.waitForRequests(2, path);
    await eventually(async () => {
      const events = await listEvents(ns);
      expect(events.map((event) => event.status?.phase)).toEqual(["SENT", "SENT"]);
    });

    // The WebhookEvents name their Webhook as controller owner: background deletion removes them.
    await kubectl(["delete", "webhook", "crm", "-n", ns]);
    await eventually(async () => expect(await listEvents(ns)).toEqual([]), 30_000);

    // The generated signing Secret is owned by the integration; a Secret the user named is not.
    expect(await exists(["secret", "webhook-signing-secret", "-n", ns])).toBe(true);
    await kubectl(["delete", "webhookintegration", "default", "-n", ns]);
    await eventually(
      async () => expect(await exists(["secret", "webhook-signing-secret", "-n", ns])).toBe(false),
      30_000,
    );
  });

  it("a deleted namespace terminates: its Webhooks, integration and Secrets go with it", async () => {
    const ns = world.namespaces.doomed!;
    await applyYaml(
      [integrationYaml(ns), webhookYaml(ns, "crm", "job.created", receiver.url("/gc/doomed"))].join(
        "\n---\n",
      ),
    );
    await eventually(async () => expect(ready(await getIntegration(ns))).toMatchObject({ status: "True" }));
    await kubectl(["delete", "namespace", ns, "--wait=false"]);
    await eventually(async () => expect(await exists(["namespace", ns])).toBe(false), 60_000);
  });
});
