import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { deliveryId } from "../../contract/delivery-id.ts";
import type { DeliveryPage, DeliverySummary } from "../../contract/delivery-log.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import {
  api,
  eventually,
  INGEST_TOKEN,
  TEST_SECRET_BOX,
  testRouting,
  testSettings,
} from "../../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../../test/support/receiver.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher.ts";

// One dispatcher and one event log for the whole file: 2 namespaces, 3 webhooks, 30 events.

let redis: Redis;
let receiver: Receiver;
let dispatcher: Dispatcher;
const EVENTS = 10;

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
  receiver.on("/down", { kind: "respond", status: 500 });
  dispatcher = await startDispatcher(testSettings(inject("redisUrl")));
  let revision = await writeNamespaceRouting(
    redis,
    testRouting("team-a", [
      { name: "jobs", event: "job.created", url: receiver.url("/up") },
      { name: "payments", event: "payment.received", url: receiver.url("/down") },
    ]),
    dispatcher.keys,
    TEST_SECRET_BOX,
  );
  revision = await writeNamespaceRouting(
    redis,
    testRouting("team-b", [{ name: "jobs", event: "job.created", url: receiver.url("/up") }]),
    dispatcher.keys,
    TEST_SECRET_BOX,
  );
  await eventually(() => (dispatcher.routingRevision() >= revision ? true : undefined));
  const events = [];
  for (let i = 0; i < EVENTS; i++) {
    events.push(
      { type: "job.created", namespace: "team-a", id: `a-job-${i}`, data: { i } },
      { type: "payment.received", namespace: "team-a", id: `a-pay-${i}`, data: { i } },
      { type: "job.created", namespace: "team-b", id: `b-job-${i}`, data: { i } },
    );
  }
  const response = await api(dispatcher.url, "POST", "/v1/events/batch", { events }, INGEST_TOKEN);
  expect(response.status).toBe(202);
  await eventually(async () => {
    const page = await list("?phase=FAILED&limit=100");
    return page.items.length === EVENTS ? true : undefined;
  });
  await eventually(async () =>
    (await list("?phase=SENT&limit=100")).items.length === 2 * EVENTS ? true : undefined,
  );
});
afterAll(async () => {
  await dispatcher.stop();
  await receiver.close();
  redis.disconnect();
});

async function list(query: string): Promise<DeliveryPage> {
  const response = await api(dispatcher.url, "GET", `/v1/deliveries${query}`);
  expect(response.status).toBe(200);
  return response.body as DeliveryPage;
}

describe("GET /v1/deliveries", () => {
  it("lists newest first", async () => {
    const page = await list("?limit=100");
    expect(page.items).toHaveLength(3 * EVENTS);
    const created = page.items.map((item) => item.createdAt);
    expect([...created].sort().reverse()).toEqual(created);
    expect(page.nextCursor).toBeUndefined();
  });

  it.each([
    ["?namespace=team-b", (d: DeliverySummary) => d.namespace === "team-b", EVENTS],
    ["?namespace=team-a&webhook=payments", (d: DeliverySummary) => d.webhook === "payments", EVENTS],
    ["?webhook=jobs", (d: DeliverySummary) => d.webhook === "jobs", 2 * EVENTS],
    [
      "?namespace=team-a&eventType=job.created",
      (d: DeliverySummary) => d.eventType === "job.created",
      EVENTS,
    ],
    [
      "?phase=FAILED",
      (d: DeliverySummary) => d.phase === "FAILED" && d.failureReason === "attempts-exhausted",
      EVENTS,
    ],
    [
      "?namespace=team-a&phase=SENT",
      (d: DeliverySummary) => d.phase === "SENT" && d.namespace === "team-a",
      EVENTS,
    ],
  ])("filters by %s", async (query, predicate, count) => {
    const page = await list(`${query}&limit=100`);
    expect(page.items).toHaveLength(count);
    expect(page.items.every(predicate)).toBe(true);
  });

  it("pages with a cursor, without gaps or repeats", async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page: DeliveryPage = await list(`?limit=7${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.items.length).toBeLessThanOrEqual(7);
      seen.push(...page.items.map((item) => item.id));
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    expect(seen).toHaveLength(3 * EVENTS);
    expect(new Set(seen).size).toBe(3 * EVENTS);
  });

  it("rejects bad filters with the reason", async () => {
    const response = await api(dispatcher.url, "GET", "/v1/deliveries?phase=DONE");
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: { code: "INVALID_REQUEST", details: [{ path: "phase" }] } });
    expect((await api(dispatcher.url, "GET", "/v1/deliveries?cursor=bogus")).status).toBe(400);
    expect((await api(dispatcher.url, "GET", "/v1/deliveries", undefined, INGEST_TOKEN)).status).toBe(401);
  });
});

describe("GET /v1/deliveries/:id", () => {
  it("shows the payload and every attempt", async () => {
    const id = deliveryId("team-a", "a-pay-3", "payments");
    const response = await api(dispatcher.url, "GET", `/v1/deliveries/${id}`);
    expect(response.status).toBe(200);
    const record = response.body as { payload: string; attempts: unknown[]; phase: string };
    expect(record.phase).toBe("FAILED");
    expect(JSON.parse(record.payload)).toMatchObject({
      id: "a-pay-3",
      type: "payment.received",
      data: { i: 3 },
    });
    expect(record.attempts).toEqual(
      [1, 2, 3].map((number) =>
        expect.objectContaining({ number, statusCode: 500, errorCode: "http_status" }),
      ),
    );
    expect(await api(dispatcher.url, "GET", "/v1/deliveries/nope")).toMatchObject({
      status: 404,
      body: { error: { code: "DELIVERY_NOT_FOUND" } },
    });
  });
});

describe("retry", () => {
  it("refuses a delivery that is not FAILED", async () => {
    const sent = deliveryId("team-b", "b-job-1", "jobs");
    expect(await api(dispatcher.url, "POST", `/v1/deliveries/${sent}/retry`)).toMatchObject({
      status: 409,
      body: { error: { code: "DELIVERY_NOT_FAILED" } },
    });
    expect((await api(dispatcher.url, "POST", "/v1/deliveries/nope/retry")).status).toBe(404);
  });

  it("retries by filter, once per token", async () => {
    receiver.on("/down", { kind: "respond", status: 200 });
    const bulk = await api(dispatcher.url, "POST", "/v1/deliveries/retry", {
      namespace: "team-a",
      webhook: "payments",
      token: "incident-42",
      limit: 4,
    });
    expect(bulk).toEqual({
      status: 202,
      body: { token: "incident-42", requeued: 4, alreadyHonoured: 0, notFailed: 0, notFound: 0 },
    });
    await eventually(async () =>
      (await list("?phase=FAILED&limit=100")).items.length === EVENTS - 4 ? true : undefined,
    );
    const rest = await api(dispatcher.url, "POST", "/v1/deliveries/retry", {
      namespace: "team-a",
      token: "incident-43",
    });
    expect(rest.body).toMatchObject({ requeued: EVENTS - 4 });
    await eventually(async () =>
      (await list("?phase=SENT&limit=100")).items.length === 3 * EVENTS ? true : undefined,
    );
    const again = await api(dispatcher.url, "POST", "/v1/deliveries/retry", { token: "incident-43" });
    expect(again.body).toMatchObject({ requeued: 0 });
    expect((await api(dispatcher.url, "POST", "/v1/deliveries/retry", {})).status).toBe(400);
  });
});
