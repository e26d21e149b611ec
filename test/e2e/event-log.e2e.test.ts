// Which deliveries become WebhookEvents (eventLog.mirror) and how many stay (eventLog.maxEvents).
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { applyYaml } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type E2eWorld, setupWorld } from "./harness.ts";
import { eventually, getWebhook, integrationYaml, listEvents, routingLive, webhookYaml } from "./k8s.ts";

let world: E2eWorld;
let receiver: Receiver;

beforeAll(async () => {
  world = await setupWorld("eventlog", ["failedonly", "none", "retention"]);
  receiver = await startReceiver();
  await world.startOperator("op-eventlog");
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

describe("eventLog.mirror", () => {
  it("FailedOnly: only deliveries that reach FAILED become WebhookEvents", async () => {
    const ns = world.namespaces.failedonly!;
    receiver.on("/fo/broken", { kind: "respond", status: 500 });
    await applyYaml(
      [
        integrationYaml(ns, { mirror: "FailedOnly" }),
        webhookYaml(ns, "healthy", "job.created", receiver.url("/fo/healthy")),
        webhookYaml(ns, "broken", "job.created", receiver.url("/fo/broken")),
      ].join("---\n"),
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 2);
    await world.dispatcher.publish({
      type: "job.created",
      namespace: ns,
      id: "job-1",
      data: { jobId: "j1" },
    });

    await receiver.waitForRequests(1, "/fo/healthy");
    await receiver.waitForRequests(3, "/fo/broken");
    const [failed] = await eventually(async () => {
      const events = await listEvents(ns);
      expect(events.map((e) => [e.spec.webhook, e.status?.phase])).toEqual([["broken", "FAILED"]]);
      return events;
    });
    expect(failed!.status?.attempts).toBe(3);
    await sleep(1_000);
    expect(await listEvents(ns)).toHaveLength(1);
  });

  it("None: no WebhookEvents, yet the Webhook still shows its last delivery", async () => {
    const ns = world.namespaces.none!;
    await applyYaml(
      `${integrationYaml(ns, { mirror: "None" })}---\n${webhookYaml(ns, "quiet", "job.created", receiver.url("/none"))}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    await world.dispatcher.publish({
      type: "job.created",
      namespace: ns,
      id: "job-1",
      data: { jobId: "j1" },
    });
    await world.dispatcher.publish({
      type: "job.created",
      namespace: ns,
      id: "job-2",
      data: { jobId: "j2" },
    });
    await receiver.waitForRequests(2, "/none");
    await eventually(async () => {
      expect((await getWebhook(ns, "quiet")).status?.lastDelivery).toMatchObject({ phase: "SENT" });
    });
    expect(await listEvents(ns)).toHaveLength(0);
  });
});

describe("eventLog.maxEvents", () => {
  it("keeps the newest maxEvents WebhookEvents and deletes the oldest", async () => {
    const ns = world.namespaces.retention!;
    await applyYaml(
      `${integrationYaml(ns, { maxEvents: 3 })}---\n${webhookYaml(ns, "hook", "job.created", receiver.url("/retention"))}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    for (const id of ["old-1", "old-2", "old-3"]) {
      await world.dispatcher.publish({ type: "job.created", namespace: ns, id, data: {} });
    }
    await eventually(async () =>
      expect(await listEvents(ns, "webhooks.dataforce.io/phase=SENT")).toHaveLength(3),
    );
    await sleep(1_100); // creationTimestamp has second precision: the next ones are strictly newer
    for (const id of ["new-1", "new-2", "new-3"]) {
      await world.dispatcher.publish({ type: "job.created", namespace: ns, id, data: {} });
    }
    await receiver.waitForRequests(6, "/retention");
    await eventually(
      async () => {
        const kept = await listEvents(ns);
        expect(kept.map((e) => e.spec.eventId).sort()).toEqual(["new-1", "new-2", "new-3"]);
      },
      20_000,
      250,
    );
    // Deleted ones are not mirrored back.
    await sleep(1_500);
    expect(await listEvents(ns)).toHaveLength(3);
  });
});
