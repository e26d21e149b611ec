// Webhook filters at fan-out, with real Redis and a real receiver: a matching event is delivered,
// a non-matching one creates no delivery and is counted; an event a filter fails on, or that runs
// it over its budget, is not delivered and is counted with that reason.
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { readEvent } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import { FILTER_ITERATION_BUDGET } from "../../contract/event-filter.ts";
import type { NamespaceRoutingInput } from "../../contract/routing-config.ts";
import { api, routeNamespaces, testRouting, testSettings } from "../../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../../test/support/receiver.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher.ts";

let redis: Redis;
let receiver: Receiver;
let dispatcher: Dispatcher | undefined;

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
  redis.disconnect();
});
afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
});

async function start(routing: NamespaceRoutingInput): Promise<Dispatcher> {
  dispatcher = await startDispatcher(testSettings(inject("redisUrl")));
  await routeNamespaces(redis, dispatcher!, [routing], 2_000);
  return dispatcher;
}

async function publish(namespace: string, id: string, data: Record<string, unknown>): Promise<void> {
  const response = await api(dispatcher!.url, "POST", "/v1/events", {
    type: "payment.received",
    namespace,
    id,
    data,
  });
  expect(response.status).toBe(202);
}

async function metric(line: string): Promise<number> {
  const text = await (await fetch(`${dispatcher!.url}/metrics`)).text();
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return Number(found?.split(" ")[1] ?? Number.NaN);
}

let pathCounter = 0;
const uniquePath = (name: string) => `/${name}-${++pathCounter}`;

describe("webhook filters at fan-out", () => {
  it("delivers the events a filter matches, creates no delivery for the rest, and counts them", async () => {
    const large = uniquePath("large");
    const euro = uniquePath("euro");
    const every = uniquePath("every");
    await start(
      testRouting("shop", [
        {
          name: "large",
          event: "payment.received",
          url: receiver.url(large),
          filter: "event.data.amount > 100.0",
        },
        {
          name: "euro",
          event: "payment.received",
          url: receiver.url(euro),
          filter: "event.data.currency == 'EUR' && event.type == 'payment.received'",
        },
        { name: "every", event: "payment.received", url: receiver.url(every) },
      ]),
    );
    await publish("shop", "p-big-usd", { amount: 150, currency: "USD" });
    await publish("shop", "p-small-eur", { amount: 20, currency: "EUR" });
    await publish("shop", "p-small-usd", { amount: 5, currency: "USD" });

    await receiver.waitForRequests(3, every);
    const [bigRequest] = await receiver.waitForRequests(1, large);
    const [euroRequest] = await receiver.waitForRequests(1, euro);
    expect(JSON.parse(bigRequest!.body)).toMatchObject({ id: "p-big-usd", webhook: "large" });
    expect(JSON.parse(euroRequest!.body)).toMatchObject({ id: "p-small-eur", webhook: "euro" });

    const event = await readEvent(redis, "shop", "p-small-usd", dispatcher!.keys);
    expect(event).toMatchObject({
      routing: "routed",
      deliveryIds: [deliveryId("shop", "p-small-usd", "every")],
    });
    expect(await metric('dataforce_dispatcher_deliveries_filtered_total{reason="no-match"}')).toBe(4);
    expect(await metric("dataforce_dispatcher_deliveries_created_total")).toBe(5);
    await sleep(200); // nothing more arrives
    expect(receiver.requests(large)).toHaveLength(1);
    expect(receiver.requests(euro)).toHaveLength(1);
  });

  it("records an event every subscriber's filter left out as filtered, without deliveries", async () => {
    const path = uniquePath("only");
    await start(
      testRouting("quiet", [
        { name: "only", event: "payment.received", url: receiver.url(path), filter: "event.data.vip" },
      ]),
    );
    await publish("quiet", "q-1", { vip: false });
    await publish("quiet", "q-2", { vip: true });
    await receiver.waitForRequests(1, path);
    expect(await readEvent(redis, "quiet", "q-1", dispatcher!.keys)).toMatchObject({
      routing: "filtered",
      deliveryIds: [],
    });
    const shown = await api(dispatcher!.url, "GET", "/v1/events/quiet/q-1");
    expect(shown.body).toMatchObject({ routing: "filtered", deliveryIds: [] });
    expect(await metric('dataforce_dispatcher_events_fanned_out_total{routing="filtered"}')).toBe(1);
  });

  it("does not deliver an event a filter fails on or runs over its budget on, and counts the reason", async () => {
    const strict = uniquePath("strict");
    const loop = uniquePath("loop");
    const every = uniquePath("every");
    await start(
      testRouting("errs", [
        // fails on events without `status` (has(event.data.status) && … would not)
        {
          name: "strict",
          event: "payment.received",
          url: receiver.url(strict),
          filter: "event.data.status == 'paid'",
        },
        {
          name: "loop",
          event: "payment.received",
          url: receiver.url(loop),
          filter: "event.data.items.all(i, i >= 0.0)",
        },
        { name: "every", event: "payment.received", url: receiver.url(every) },
      ]),
    );
    await publish("errs", "e-paid", { status: "paid", items: [1, 2] });
    await publish("errs", "e-bare", { items: [] });
    await publish("errs", "e-long", {
      status: "open",
      items: Array.from({ length: FILTER_ITERATION_BUDGET + 1 }, (_, i) => i),
    });
    await receiver.waitForRequests(3, every);
    await receiver.waitForRequests(1, strict);
    await receiver.waitForRequests(2, loop); // e-paid, e-bare
    await sleep(200);
    expect(receiver.requests(strict).map((r) => JSON.parse(r.body).id)).toEqual(["e-paid"]);
    expect(receiver.requests(loop).map((r) => JSON.parse(r.body).id)).toEqual(["e-paid", "e-bare"]);
    expect(await metric('dataforce_dispatcher_deliveries_filtered_total{reason="error"}')).toBe(1);
    expect(await metric('dataforce_dispatcher_deliveries_filtered_total{reason="no-match"}')).toBe(1);
    expect(await metric('dataforce_dispatcher_deliveries_filtered_total{reason="limit"}')).toBe(1);
  });

  it("a filter that does not compile in the dispatcher (version skew) delivers nothing, the rest go on", async () => {
    const broken = uniquePath("broken");
    const every = uniquePath("every");
    await start(
      testRouting("skew", [
        { name: "broken", event: "payment.received", url: receiver.url(broken), filter: "event.data.x ==" },
        { name: "every", event: "payment.received", url: receiver.url(every) },
      ]),
    );
    await publish("skew", "s-1", { x: 1 });
    await receiver.waitForRequests(1, every);
    await sleep(200);
    expect(receiver.requests(broken)).toHaveLength(0);
    expect(await metric('dataforce_dispatcher_deliveries_filtered_total{reason="error"}')).toBe(1);
  });
});
