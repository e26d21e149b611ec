import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import type { DeliveryRecord } from "../contract/records.ts";
import { installCrds } from "../test/env/install-crds.ts";
import { createTestNamespace, kubeClient, kubectl } from "../test/env/kubectl.ts";
import { TEST_ENCRYPTION_KEYS, uniqueKeyTag } from "../test/support/fixtures.ts";
import { largeDeliveryRecord } from "../test/support/large-webhook-events.ts";
import { SettingsSchema } from "./config.ts";
import { newWebhookEvent } from "./mirror/webhook-event.ts";
import { createOperator, type Operator } from "./operator.ts";
import { WEBHOOK_EVENTS } from "./resources.ts";

// The regression guard of the operator's bounded memory (issue 10, item 5; measured by
// `npm run bench:operator-memory`): the operator as createOperator wires it caches WebhookEvents
// without spec.payload (and metadata.managedFields), whether it got them from a list, a watch
// ADDED or a watch MODIFIED.

const PAYLOAD_BYTES = 60 * 1024;

let namespace: { name: string; delete(): Promise<void> };
let operator: Operator | undefined;

beforeAll(async () => {
  namespace = await createTestNamespace("operator-cache");
  await installCrds(join(inject("assetsDir"), "kubectl"), inject("kubeconfig"), namespace.name);
});

afterAll(async () => {
  await operator?.stop();
  await namespace?.delete();
});

function record(i: number): DeliveryRecord {
  return largeDeliveryRecord(namespace.name, i, "hook", PAYLOAD_BYTES);
}

async function createEvents(from: number, count: number): Promise<void> {
  const items = Array.from({ length: count }, (_, k) =>
    newWebhookEvent(record(from + k), "0000-webhook-uid"),
  );
  await kubectl(["create", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items }) });
}

describe("the operator's WebhookEvent cache", () => {
  it("holds no payload or managedFields, from the list, a watch ADDED or a watch MODIFIED", async () => {
    await createEvents(0, 5);
    const settings = SettingsSchema.parse({
      redisUrl: inject("redisUrl"),
      keyTag: uniqueKeyTag(),
      encryptionKeys: TEST_ENCRYPTION_KEYS,
      host: "127.0.0.1",
      port: 0,
      logLevel: "silent",
      watchNamespaces: namespace.name,
      leaderElection: "false",
    });
    operator = createOperator(settings, kubeClient(), pino({ enabled: false }));
    await operator.start();
    // the same key as the operator's own informer: the manager hands back that instance
    const events = operator.manager.informer({ ...WEBHOOK_EVENTS, namespace: namespace.name });
    await events.waitForSync();
    expect(events.list()).toHaveLength(5);

    await createEvents(5, 5);
    const first = record(0).id;
    await kubectl([
      ...["patch", "webhookevent", first, "-n", namespace.name, "--subresource=status", "--type=merge"],
      ...["-p", JSON.stringify({ status: { phase: "SENT", attempts: 1 } })],
    ]);
    await vi.waitFor(
      () => {
        expect(events.list()).toHaveLength(10);
        expect(events.get(first, namespace.name)).toMatchObject({ status: { phase: "SENT" } });
      },
      { timeout: 10_000 },
    );

    for (const event of events.list()) {
      const spec = (event as { spec?: Record<string, unknown> }).spec;
      expect(spec).toMatchObject({ deliveryId: event.metadata?.name, eventType: "job.created" });
      expect(spec).not.toHaveProperty("payload");
      expect(event.metadata).not.toHaveProperty("managedFields");
    }
    // the whole cache is a few KiB, not 10 × 60 KiB
    expect(JSON.stringify(events.list()).length).toBeLessThan(20_000);
  });
});
