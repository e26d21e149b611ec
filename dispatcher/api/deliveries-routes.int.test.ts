import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { deliveryId } from "../../contract/delivery-id.ts";
import type { DeliveryPage, DeliverySummary } from "../../contract/delivery-log.ts";
import { tokenDigest } from "../../contract/routing-config.ts";
import {
  api,
  eventually,
  INGEST_TOKEN,
  routeNamespaces,
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
/** team-a's own event log token (its digest is in team-a's routing). */
const TEAM_A_LOG_TOKEN = "team-a-event-log-token-0123456789";

/**
 * The suite's attempts time out after 1 s; on a loaded machine an answer of the local receiver can
 * take longer, and the attempts listed here must be the receiver's answers, not timeouts.
 */
const UNHURRIED = {
  maxAttempts: 3,
  timeoutMs: 15_000,
  backoff: { initialDelayMs: 20, maxDelayMs: 200, multiplier: 2 },
  // the FAILED deliveries listed here need their attempts spent: the breaker (on by default) would hold them
  circuitBreaker: { consecutiveFailures: 0 },
};

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
  receiver.on("/down", { kind: "respond", status: 500 });
  dispatcher = await startDispatcher(testSettings(inject("redisUrl")));
  await routeNamespaces(redis, dispatcher, [
    testRouting(
      "team-a",
      [
        { name: "jobs", event: "job.created", url: receiver.url("/up") },
        { name: "payments", event: "payment.received", url: receiver.url("/down") },
      ],
      { eventLogTokenDigests: [tokenDigest(TEAM_A_LOG_TOKEN)], delivery: UNHURRIED },
    ),
    testRouting("team-b", [{ name: "jobs", event: "job.created", url: receiver.url("/up") }], {
      delivery: UNHURRIED,
    }),
  ]);
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
    expect(response.body).toMatchObject({
      requestHeaders: expect.arrayContaining([
        { name: "content-type", value: "application/json" },
        { name: "webhook-id", value: id },
        { name: "webhook-signature", note: expect.stringContaining("not shown") },
      ]),
    });
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

describe("a namespace's own event log token", () => {
  const asTeamA = (method: string, path: string, body?: unknown) =>
    api(dispatcher.url, method, path, body, TEAM_A_LOG_TOKEN);

  it("lists, shows and reads events of its namespace only", async () => {
    const page = (await asTeamA("GET", "/v1/deliveries?limit=100")).body as DeliveryPage;
    expect(page.items.length).toBeGreaterThanOrEqual(2 * EVENTS);
    expect(new Set(page.items.map((item) => item.namespace))).toEqual(new Set(["team-a"]));
    expect(await asTeamA("GET", "/v1/deliveries?namespace=team-b")).toMatchObject({
      status: 403,
      body: {
        error: {
          code: "NAMESPACE_FORBIDDEN",
          message: "this token reads the event log only of namespace team-a, not team-b",
        },
      },
    });
    const own = deliveryId("team-a", "a-job-1", "jobs");
    const other = deliveryId("team-b", "b-job-1", "jobs");
    expect((await asTeamA("GET", `/v1/deliveries/${own}`)).status).toBe(200);
    expect(await asTeamA("GET", `/v1/deliveries/${other}`)).toMatchObject({
      status: 404,
      body: { error: { code: "DELIVERY_NOT_FOUND" } },
    });
    expect((await asTeamA("GET", "/v1/events/team-a/a-job-1")).status).toBe(200);
    expect((await asTeamA("GET", "/v1/events/team-b/b-job-1")).status).toBe(404);
    // the admin still sees both
    expect((await api(dispatcher.url, "GET", `/v1/deliveries/${other}`)).status).toBe(200);
  });

  it("retries its namespace's deliveries only", async () => {
    receiver.on("/down", { kind: "respond", status: 500 });
    await routeNamespaces(redis, dispatcher, [
      testRouting("team-b", [
        { name: "jobs", event: "job.created", url: receiver.url("/up") },
        { name: "payments", event: "payment.received", url: receiver.url("/down") },
      ]),
    ]);
    const late = [
      { type: "payment.received", namespace: "team-a", id: "a-late", data: {} },
      { type: "payment.received", namespace: "team-b", id: "b-late", data: {} },
    ];
    expect(
      (await api(dispatcher.url, "POST", "/v1/events/batch", { events: late }, INGEST_TOKEN)).status,
    ).toBe(202);
    const ownFailed = deliveryId("team-a", "a-late", "payments");
    const otherFailed = deliveryId("team-b", "b-late", "payments");
    await eventually(async () => {
      const failed = (await list("?phase=FAILED&limit=100")).items.map((item) => item.id);
      return failed.includes(ownFailed) && failed.includes(otherFailed) ? true : undefined;
    });

    expect(await asTeamA("POST", `/v1/deliveries/${otherFailed}/retry`)).toMatchObject({ status: 404 });
    expect(
      (await asTeamA("POST", "/v1/deliveries/retry", { namespace: "team-b", token: "t-1" })).status,
    ).toBe(403);
    expect((await asTeamA("POST", "/v1/deliveries/retry", { token: "t-1" })).body).toMatchObject({
      requeued: 1,
    });
    await eventually(async () =>
      (await list("?phase=FAILED&limit=100")).items.some((item) => item.id === ownFailed) ? undefined : true,
    );
    const stillFailed = (await list("?phase=FAILED&limit=100")).items.map((item) => item.id);
    expect(stillFailed).toContain(otherFailed);
  });

  it("is refused where it has no say: ingest", async () => {
    const response = await asTeamA("POST", "/v1/events", {
      type: "job.created",
      namespace: "team-a",
      data: {},
    });
    expect(response.status).toBe(401);
  });
});
