// Endpoint health end to end (issue 15, item 1): a real API server, Redis, the operator and the
// dispatcher as processes, real receivers on 127.0.0.1. A receiver down for a while opens the
// webhook's circuit (its deliveries wait, attempts unspent) and the Webhook's status.health says
// so; back up, the circuit closes and the deliveries flow. A receiver down for longer than the
// integration's (short) autoPause.after auto-pauses the webhook: Ready=False/EndpointUnhealthy,
// Stalled, an Event, a metric, its deliveries held in Redis; the resume annotation and a spec
// change each bring it back.
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { WebhookHealth } from "../../operator/api/v1alpha1/index.ts";
import { applyYaml, kubectl } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type E2eWorld, metricValue, type OperatorProcess, setupWorld } from "./harness.ts";
import {
  eventually,
  getWebhook,
  integrationYaml,
  kubeEvents,
  listEvents,
  ready,
  routingLive,
  webhookYaml,
} from "./k8s.ts";

let world: E2eWorld;
let receiver: Receiver;
let operator: OperatorProcess;

beforeAll(async () => {
  world = await setupWorld("health", ["circuit", "pause"]);
  receiver = await startReceiver();
  // the health poll every 500 ms: status.health at once on a new state, other changes every 3 s
  operator = await world.startOperator("op-health", { OPERATOR_HEALTH_POLL_MS: "500" });
});
beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));
afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

const health = async (ns: string, name: string): Promise<WebhookHealth | undefined> =>
  ((await getWebhook(ns, name)).status as { health?: WebhookHealth } | undefined)?.health;

/** The WebhookEvents of `webhook` in `phase`, by name. */
async function namesIn(ns: string, webhook: string, phase: string): Promise<string[]> {
  const selector = `webhooks.dataforce.io/webhook=${webhook},webhooks.dataforce.io/phase=${phase}`;
  return (await listEvents(ns, selector)).map((event) => event.metadata.name).sort();
}

async function phases(ns: string, webhook: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const event of await listEvents(ns, `webhooks.dataforce.io/webhook=${webhook}`)) {
    const phase = event.status?.phase ?? "none";
    counts[phase] = (counts[phase] ?? 0) + 1;
  }
  return counts;
}

async function publish(ns: string, type: string, ids: readonly string[]): Promise<void> {
  for (const id of ids) await world.dispatcher.publish({ type, namespace: ns, id, data: { id } });
}

describe("a receiver down for a while", () => {
  it("opens the circuit (deliveries wait, attempts unspent, status.health CircuitOpen); back up, it closes and the deliveries flow", async () => {
    const ns = world.namespaces.circuit!;
    receiver.on("/circuit", { kind: "respond", status: 503, body: "maintenance" });
    await applyYaml(
      [
        integrationYaml(ns, {
          autoPauseAfter: "0s",
          circuitBreaker: { consecutiveFailures: 3, cooldown: "1s", maxCooldown: "2s" },
        }),
        webhookYaml(ns, "orders", "job.created", receiver.url("/circuit")),
      ].join("---\n"),
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    const ids = Array.from({ length: 6 }, (_, i) => `down-${i}`);
    await publish(ns, "job.created", ids);

    const open = await eventually(async () => {
      const current = await health(ns, "orders");
      expect(current?.state).toBe("CircuitOpen");
      return current!;
    }, 30_000);
    expect(open).toMatchObject({ lastFailureReason: "HTTP 503", failureRatio: 1 });
    expect(open.consecutiveFailures).toBeGreaterThanOrEqual(3);
    expect(Date.parse(open.nextProbeTime ?? "")).toBeGreaterThan(Date.parse(open.failingSince ?? ""));
    expect(Date.parse(open.lastFailureTime ?? "")).toBeGreaterThanOrEqual(
      Date.parse(open.failingSince ?? ""),
    );
    expect(ready(await getWebhook(ns, "orders"))).toMatchObject({ status: "True", reason: "Active" });

    // Down for 5 s more: only probes reach it (one a second or two), where 6 deliveries × 3
    // attempts would all have been spent by now; the deliveries wait, QUEUED.
    await sleep(5_000);
    const whileDown = receiver.requests("/circuit").length;
    expect(whileDown).toBeGreaterThanOrEqual(3);
    expect(whileDown).toBeLessThan(18);
    expect((await phases(ns, "orders")).FAILED ?? 0).toBeLessThanOrEqual(1);

    // Back up: the next probe succeeds, the circuit closes, every delivery is SENT.
    receiver.on("/circuit", { kind: "respond", status: 200 });
    await eventually(async () =>
      expect(await phases(ns, "orders")).toMatchObject({ SENT: expect.any(Number) }),
    );
    await eventually(async () => {
      const counts = await phases(ns, "orders");
      expect((counts.SENT ?? 0) + (counts.FAILED ?? 0)).toBe(ids.length);
      expect(counts.SENT ?? 0).toBeGreaterThanOrEqual(ids.length - 1);
    }, 30_000);
    const closed = await eventually(async () => {
      const current = await health(ns, "orders");
      expect(current?.state).not.toBe("CircuitOpen");
      expect(current?.consecutiveFailures).toBe(0);
      return current!;
    }, 30_000);
    expect(closed.failingSince).toBeUndefined();
    expect(closed.nextProbeTime).toBeUndefined();
    expect(closed.lastFailureReason).toBe("HTTP 503"); // the last failure stays on show
  });
});

describe("a receiver down for longer than autoPause.after", () => {
  it("auto-pauses the webhook (EndpointUnhealthy, Stalled, Event, metric, deliveries held) until a resume annotation or a spec change", async () => {
    const ns = world.namespaces.pause!;
    receiver.on("/dead", { kind: "respond", status: 500, body: "down" });
    receiver.on("/alive", { kind: "respond", status: 200 });
    await applyYaml(
      [
        integrationYaml(ns, {
          autoPauseAfter: "3s",
          circuitBreaker: { consecutiveFailures: 2, cooldown: "500ms", maxCooldown: "1s" },
        }),
        webhookYaml(ns, "crm", "payment.received", receiver.url("/dead")),
      ].join("---\n"),
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    await publish(ns, "payment.received", ["pay-1", "pay-2", "pay-3"]);

    await eventually(async () => {
      const webhook = await getWebhook(ns, "crm");
      expect(ready(webhook)).toMatchObject({ status: "False", reason: "EndpointUnhealthy" });
      expect(webhook.status?.conditions?.find((c) => c.type === "Stalled")).toMatchObject({
        status: "True",
        reason: "EndpointUnhealthy",
      });
    }, 40_000);
    const paused = await getWebhook(ns, "crm");
    expect(ready(paused)?.message).toMatch(
      /^the endpoint failed for \d+s without a success, last: HTTP 500;/,
    );
    expect(ready(paused)?.message).toContain("webhooks.dataforce.io/resume=<token>");
    expect((paused.status as { health?: WebhookHealth }).health).toMatchObject({
      state: "AutoPaused",
      lastFailureReason: "HTTP 500",
    });
    expect((await kubectl(["get", "webhook", "crm", "-n", ns])).stdout).toMatch(/AutoPaused/);
    await eventually(async () => {
      const event = (await kubeEvents(ns)).find((e) => e.reason === "EndpointUnhealthy");
      expect(event).toMatchObject({ type: "Warning", involvedObject: { kind: "Webhook", name: "crm" } });
    });
    expect(metricValue(await operator.metrics(), "dataforce_operator_webhooks_auto_paused_total")).toBe(1);

    // Held, not failed: the routing keeps it (autoPaused), no attempt reaches the receiver, the
    // deliveries stay QUEUED, new ones too.
    await routingLive(world, ns, (r) => r?.webhooks[0]?.autoPaused === true);
    await publish(ns, "payment.received", ["pay-4"]);
    const before = receiver.requests("/dead").length;
    await sleep(3_000);
    expect(receiver.requests("/dead").length).toBe(before);
    // (probes before the pause spent attempts: some deliveries may have FAILED by then)
    const held = await eventually(async () => {
      const queued = await namesIn(ns, "crm", "QUEUED");
      expect(queued.length).toBeGreaterThanOrEqual(1); // pay-4 at least
      return queued;
    });
    expect((await phases(ns, "crm")).SENT).toBeUndefined();

    // Resumed by annotation (the token is recorded, once): the receiver is back, everything flows.
    receiver.on("/dead", { kind: "respond", status: 200 });
    await kubectl([
      "annotate",
      "webhook",
      "crm",
      "-n",
      ns,
      "webhooks.dataforce.io/resume=ticket-1",
      "--overwrite",
    ]);
    await eventually(async () => {
      const webhook = await getWebhook(ns, "crm");
      expect(ready(webhook)).toMatchObject({ status: "True", reason: "Active" });
      expect((webhook.status as { lastResumeToken?: string }).lastResumeToken).toBe("ticket-1");
    }, 20_000);
    // every delivery held while it was paused is sent
    await eventually(async () => {
      const sent = await namesIn(ns, "crm", "SENT");
      expect(held.filter((name) => !sent.includes(name))).toEqual([]);
    }, 30_000);
    expect(
      (await kubeEvents(ns)).some((e) => e.reason === "WebhookReady" && e.involvedObject.name === "crm"),
    ).toBe(true);

    // Down again for longer than 3 s: paused again (the same token does not resume it) …
    receiver.on("/dead", { kind: "respond", status: 500, body: "down" });
    await publish(ns, "payment.received", ["pay-5", "pay-6", "pay-7"]);
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "crm"))).toMatchObject({ reason: "EndpointUnhealthy" });
    }, 40_000);
    expect(metricValue(await operator.metrics(), "dataforce_operator_webhooks_auto_paused_total")).toBe(2);
    await publish(ns, "payment.received", ["pay-8"]); // held too
    const heldAgain = await eventually(async () => {
      const queued = await namesIn(ns, "crm", "QUEUED");
      expect(queued.length).toBeGreaterThanOrEqual(1);
      return queued;
    });
    // … and a spec change (the team moves the receiver) resumes it.
    await applyYaml(webhookYaml(ns, "crm", "payment.received", receiver.url("/alive")));
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "crm"))).toMatchObject({ status: "True", reason: "Active" });
    }, 20_000);
    await routingLive(world, ns, (r) => r?.webhooks[0]?.autoPaused === false);
    await eventually(async () => {
      const sent = await namesIn(ns, "crm", "SENT");
      expect(heldAgain.filter((name) => !sent.includes(name))).toEqual([]);
    }, 30_000);
    expect(receiver.requests("/alive").length).toBeGreaterThanOrEqual(heldAgain.length);
  });
});
