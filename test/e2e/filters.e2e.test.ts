// Webhook filters (issue 15, item 3) on a real API server with the operator and dispatcher as
// processes: a filter that does not compile is refused with the compiler's message in the Ready
// condition (Stalled, out of the routing) until it is fixed; a valid one delivers the matching
// event to a real receiver and creates no delivery for the other.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { applyYaml, kubectl } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { ADMIN_TOKEN, type E2eWorld, metricValue, setupWorld } from "./harness.ts";
import {
  eventually,
  getWebhook,
  integrationYaml,
  listEvents,
  ready,
  routingLive,
  webhookYaml,
} from "./k8s.ts";

let world: E2eWorld;
let receiver: Receiver;

beforeAll(async () => {
  world = await setupWorld("filters", ["shop"]);
  receiver = await startReceiver();
  await world.startOperator("op-filters");
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

describe("Webhook spec.filter", () => {
  it("refuses an expression that does not compile with the compiler's message, then delivers only what it matches", async () => {
    const ns = world.namespaces.shop!;
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "large", "payment.received", receiver.url("/large"), {
        filter: "event.data.amount > ",
      })}`,
    );
    const refused = await eventually(async () => {
      const condition = ready(await getWebhook(ns, "large"));
      expect(condition).toMatchObject({ status: "False", reason: "InvalidFilter" });
      return condition!;
    });
    expect(refused.message).toMatch(/^spec\.filter: syntax error: at 1:\d+: /);
    const webhook = await getWebhook(ns, "large");
    expect(webhook.status?.conditions?.find((c) => c.type === "Stalled")).toMatchObject({
      status: "True",
      reason: "InvalidFilter",
      message: refused.message,
    });
    // what `kubectl get` shows
    const table = (await kubectl(["get", "webhook", "large", "-n", ns])).stdout;
    expect(table).toMatch(/\sFalse\s+InvalidFilter\s/);
    // the API server's own bound
    const tooLong = await kubectl(
      [
        "patch",
        "webhook",
        "large",
        "-n",
        ns,
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { filter: `event.type == '${"x".repeat(1100)}'` } }),
      ],
      { allowFailure: true },
    );
    expect(tooLong.code).not.toBe(0);
    expect(tooLong.stderr).toMatch(/spec\.filter: Too long: may not be (longer|more) than 1024/);

    await kubectl([
      "patch",
      "webhook",
      "large",
      "-n",
      ns,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { filter: "event.data.amount > 100.0 && has(event.data.currency)" } }),
    ]);
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "large"))).toMatchObject({ status: "True", reason: "Active" });
    });
    const wide = (await kubectl(["get", "webhook", "large", "-n", ns, "-o", "wide"])).stdout;
    expect(wide).toContain("event.data.amount > 100.0");
    await routingLive(
      world,
      ns,
      (r) => r?.webhooks.some((w) => w.name === "large" && w.filter !== undefined) ?? false,
    );

    await world.dispatcher.publish({
      type: "payment.received",
      namespace: ns,
      id: "small-1",
      data: { amount: 20, currency: "EUR" },
    });
    await world.dispatcher.publish({
      type: "payment.received",
      namespace: ns,
      id: "large-1",
      data: { amount: 250, currency: "EUR" },
    });
    const [request] = await receiver.waitForRequests(1, "/large");
    expect(JSON.parse(request!.body)).toMatchObject({ id: "large-1", webhook: "large" });
    await eventually(async () => {
      const events = await listEvents(ns, "webhooks.dataforce.io/webhook=large");
      expect(events.map((e) => e.spec.eventId)).toEqual(["large-1"]);
    });
    const shown = await fetch(`${world.dispatcher.url}/v1/events/${ns}/small-1`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(await shown.json()).toMatchObject({ routing: "filtered", deliveryIds: [] });
    const metrics = await (await fetch(`${world.dispatcher.url}/metrics`)).text();
    expect(
      metricValue(metrics, "dataforce_dispatcher_deliveries_filtered_total", { reason: "no-match" }),
    ).toBe(1);
    expect(receiver.requests("/large")).toHaveLength(1);
  });
});
