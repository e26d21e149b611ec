import { request as httpRequest } from "node:http";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { readEvent } from "../../contract/deliveries.ts";
import { tokenDigest } from "../../contract/routing-config.ts";
import {
  ADMIN_TOKEN,
  api,
  eventually,
  INGEST_TOKEN,
  routeNamespaces,
  testRouting,
  testSettings,
} from "../../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../../test/support/receiver.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher.ts";

let redis: Redis;
let receiver: Receiver;
let dispatcher: Dispatcher;

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
  dispatcher = await startDispatcher(
    testSettings(inject("redisUrl"), { maxEventBytes: 1024, maxBatchEvents: 5 }),
  );
  await routeNamespaces(redis, dispatcher, [
    testRouting("team-a", [{ name: "jobs", event: "job.created", url: receiver.url("/jobs") }]),
  ]);
});
afterAll(async () => {
  await dispatcher.stop();
  await receiver.close();
  redis.disconnect();
});

/** What ingest writes at once: entries on the ingest stream and queued work for new deliveries. */
async function created(): Promise<number[]> {
  const { events, deliveries } = dispatcher.keys;
  return Promise.all([events, deliveries].map((key) => redis.xlen(key)));
}

const event = (extra: Record<string, unknown> = {}) => ({
  type: "job.created",
  namespace: "team-a",
  data: { jobId: "j-1" },
  ...extra,
});

describe("POST /v1/events", () => {
  it("requires the ingest token", async () => {
    expect((await api(dispatcher.url, "POST", "/v1/events", event(), "wrong-token-0123456789")).status).toBe(
      401,
    );
    const adminToken = await api(dispatcher.url, "POST", "/v1/events", event(), ADMIN_TOKEN);
    expect(adminToken).toEqual({
      status: 401,
      body: { error: { code: "UNAUTHORIZED", message: "a valid bearer token is required" } },
    });
    const none = await fetch(`${dispatcher.url}/v1/events`, { method: "POST", body: "{}" });
    expect(none.status).toBe(401);
  });

  it.each([
    ["an unknown type", event({ type: "job.exploded" }), 400, "INVALID_EVENT", /type: Invalid option/],
    ["a missing namespace", { type: "job.created", data: {} }, 400, "INVALID_EVENT", /namespace/],
    ["non-object data", event({ data: [1, 2] }), 400, "INVALID_EVENT", /data: a JSON object/],
    ["an unknown field", event({ extra: true }), 400, "INVALID_EVENT", /extra/],
    ["an invalid id", event({ id: "has space" }), 400, "INVALID_EVENT", /id: 1-128 characters/],
    [
      "oversized data",
      event({ data: { blob: "x".repeat(2_000) } }),
      413,
      "PAYLOAD_TOO_LARGE",
      /larger than 1024/,
    ],
    [
      "an oversized body",
      event({ data: { blob: "x".repeat(40_000) } }),
      413,
      "PAYLOAD_TOO_LARGE",
      /too large/,
    ],
    ["malformed JSON", '{"type": ', 400, "INVALID_JSON", /JSON/],
  ])("rejects %s with the reason, and enqueues nothing", async (_name, body, status, code, message) => {
    const before = await created();
    const response = await api(dispatcher.url, "POST", "/v1/events", body);
    expect(response.status).toBe(status);
    const error = (response.body as { error: { code: string; message: string } }).error;
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    expect(await created()).toEqual(before);
  });

  it("rejects other media types", async () => {
    const response = await fetch(`${dispatcher.url}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${"test-ingest-token-0123456789"}`, "content-type": "text/plain" },
      body: "hello",
    });
    expect(response.status).toBe(415);
    expect(await response.json()).toMatchObject({ error: { code: "UNSUPPORTED_MEDIA_TYPE" } });
  });

  it("answers 202 with the event id and is idempotent on it", async () => {
    const first = await api(dispatcher.url, "POST", "/v1/events", event({ id: "evt-idem" }));
    const second = await api(
      dispatcher.url,
      "POST",
      "/v1/events",
      event({ id: "evt-idem", data: { jobId: "other" } }),
    );
    expect(first).toEqual({ status: 202, body: { id: "evt-idem", duplicate: false } });
    expect(second).toEqual({ status: 202, body: { id: "evt-idem", duplicate: true } });
    const record = await eventually(() =>
      readEvent(redis, "team-a", "evt-idem", dispatcher.keys).then((e) => e ?? undefined),
    );
    expect(record.deliveryIds).toHaveLength(1);
    await receiver.waitForRequests(1, "/jobs");
    expect(
      JSON.parse(receiver.requests("/jobs").find((r) => r.body.includes("evt-idem"))!.body).data,
    ).toEqual({
      jobId: "j-1",
    });
  });

  it("generates an id when none is given", async () => {
    const response = await api(dispatcher.url, "POST", "/v1/events", event());
    expect(response.status).toBe(202);
    expect((response.body as { id: string }).id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("POST /v1/events/batch", () => {
  it("accepts a batch, answering per event", async () => {
    const response = await api(dispatcher.url, "POST", "/v1/events/batch", {
      events: [event({ id: "b-1" }), event({ id: "b-2" }), event({ id: "b-1" })],
    });
    expect(response).toEqual({
      status: 202,
      body: {
        results: [
          { id: "b-1", duplicate: false },
          { id: "b-2", duplicate: false },
          { id: "b-1", duplicate: true },
        ],
      },
    });
  });

  it("rejects the whole batch when one event is invalid, naming it", async () => {
    const before = await created();
    const response = await api(dispatcher.url, "POST", "/v1/events/batch", {
      events: [event(), event({ type: "nope" })],
    });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      error: { code: "INVALID_EVENT", details: [{ path: "events.1.type" }] },
    });
    const tooMany = await api(dispatcher.url, "POST", "/v1/events/batch", { events: Array(6).fill(event()) });
    expect(tooMany.status).toBe(400);
    expect((tooMany.body as { error: { message: string } }).error.message).toMatch(/at most 5 events/);
    expect(await created()).toEqual(before);
  });
});

describe("the ingest stream", () => {
  it("accepts events appended directly with XADD, as documented", async () => {
    await redis.xadd(
      dispatcher.keys.events,
      "*",
      ...["type", "job.created", "namespace", "team-a", "id", "evt-xadd", "data", '{"jobId":"x-1"}'],
    );
    const request = await eventually(
      () => receiver.requests("/jobs").find((r) => r.body.includes('"evt-xadd"')),
      5_000,
      "the XADD event's delivery",
    );
    expect(JSON.parse(request.body)).toMatchObject({
      id: "evt-xadd",
      type: "job.created",
      data: { jobId: "x-1" },
    });
  });

  it("creates one delivery per id, whether the copies came through the API, the stream or both", async () => {
    const xadd = (id: string) =>
      redis.xadd(
        dispatcher.keys.events,
        "*",
        "type",
        "job.created",
        "namespace",
        "team-a",
        "id",
        id,
        "data",
        "{}",
      );
    await api(dispatcher.url, "POST", "/v1/events", event({ id: "evt-both" }));
    await xadd("evt-both");
    await xadd("evt-twice");
    await xadd("evt-twice");
    await xadd("evt-marker"); // processed after the copies above: when it arrives, they are done
    await eventually(() => receiver.requests("/jobs").find((r) => r.body.includes('"evt-marker"')));
    await eventually(async () => {
      const pending = (await redis.xpending(dispatcher.keys.events, "fanout")) as [number];
      return pending[0] === 0 ? true : undefined;
    });
    for (const id of ["evt-both", "evt-twice"]) {
      expect(receiver.requests("/jobs").filter((r) => r.body.includes(`"${id}"`))).toHaveLength(1);
    }
  });

  it("moves invalid entries to the dead letters and delivers nothing", async () => {
    const entryId = await redis.xadd(
      dispatcher.keys.events,
      "*",
      "type",
      "job.created",
      "namespace",
      "team-a",
      "data",
      "[]",
    );
    const dead = await eventually(async () => {
      const entries = await redis.xrange(dispatcher.keys.deadLetters, "-", "+");
      return entries.find(([, fields]) => fields.includes(entryId!));
    });
    expect(dead[1]).toEqual(expect.arrayContaining(["reason", expect.stringMatching(/JSON object/)]));
  });
});

describe("GET /v1/events/:namespace/:id", () => {
  it("shows how an event was routed, also when nobody subscribed", async () => {
    await api(dispatcher.url, "POST", "/v1/events", event({ id: "evt-lonely", type: "payment.refunded" }));
    await api(dispatcher.url, "POST", "/v1/events", event({ id: "evt-nowhere", namespace: "team-z" }));
    const lonely = await eventually(async () => {
      const response = await api(dispatcher.url, "GET", "/v1/events/team-a/evt-lonely");
      return response.status === 200 ? response.body : undefined;
    });
    expect(lonely).toMatchObject({ id: "evt-lonely", routing: "no-subscribers", deliveryIds: [] });
    const nowhere = await eventually(async () => {
      const response = await api(dispatcher.url, "GET", "/v1/events/team-z/evt-nowhere");
      return response.status === 200 ? response.body : undefined;
    });
    expect(nowhere).toMatchObject({ routing: "integration-missing" });
    expect((await api(dispatcher.url, "GET", "/v1/events/team-a/unknown")).status).toBe(404);
  });
});

/**
 * POSTs headers announcing `contentLength` bytes but sends only a few of them: resolves with the
 * status the server answered, which it can only do without waiting for (or parsing) the body.
 */
function answerBeforeBody(path: string, contentLength: number, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": contentLength,
    };
    if (token) headers.authorization = `Bearer ${token}`;
    const request = httpRequest(new URL(path, dispatcher.url), { method: "POST", headers });
    const timer = setTimeout(() => reject(new Error(`no answer to ${path} before the body`)), 5_000);
    request.on("response", (response) => {
      clearTimeout(timer);
      response.resume();
      resolve(response.statusCode ?? 0);
      request.destroy();
    });
    request.on("error", () => {}); // the server may close the connection after answering
    request.write('{"padding": "');
  });
}

describe("requests refused before their body is read", () => {
  const FIFTEEN_MB = 15 * 1024 * 1024;

  it.each([
    ["/v1/events without a token", 401, "/v1/events", undefined],
    ["/v1/events/batch without a token", 401, "/v1/events/batch", undefined],
    ["/v1/deliveries/retry without a token", 401, "/v1/deliveries/retry", undefined],
    ["an unknown path", 413, "/nope", undefined],
    ["/healthz", 413, "/healthz", undefined],
    ["/v1/events with a token but over the event limit", 413, "/v1/events", INGEST_TOKEN],
  ])("%s: 15 MB announced → %i at once", async (_name, status, path, token) => {
    expect(await answerBeforeBody(path, FIFTEEN_MB, token)).toBe(status);
  });

  it("refuses JSON nested deeper than the limit with 400 INVALID_EVENT (not a 500), creating nothing", async () => {
    const before = await created();
    const deep = `{"type":"job.created","namespace":"team-a","data":{"x":${"[".repeat(5000)}${"]".repeat(5000)}}}`;
    const response = await fetch(`${dispatcher.url}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
      body: deep, // 10 kB: within the route's body limit
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("INVALID_EVENT");
    expect(await created()).toEqual(before);
  });
});

describe("a namespace's own ingest token", () => {
  const TEAM_A_TOKEN = "team-a-own-token-0123456789abcdef";

  beforeAll(async () => {
    const hooks = [{ name: "jobs", event: "job.created" as const, url: receiver.url("/jobs") }];
    await routeNamespaces(redis, dispatcher, [
      testRouting("team-b", hooks),
      testRouting("team-a", hooks, { ingestTokenDigests: [tokenDigest(TEAM_A_TOKEN)] }),
    ]);
  });

  it("publishes into its namespace", async () => {
    const response = await api(dispatcher.url, "POST", "/v1/events", event({ id: "own-1" }), TEAM_A_TOKEN);
    expect(response.status).toBe(202);
  });

  it("is refused (403 NAMESPACE_FORBIDDEN) in another namespace, and nothing is created", async () => {
    const before = await created();
    const single = await api(
      dispatcher.url,
      "POST",
      "/v1/events",
      event({ namespace: "team-b", id: "foreign-1" }),
      TEAM_A_TOKEN,
    );
    expect(single).toEqual({
      status: 403,
      body: {
        error: {
          code: "NAMESPACE_FORBIDDEN",
          message: "this token publishes only into namespace team-a, not team-b",
        },
      },
    });
    // a batch is all or nothing: one foreign event refuses the whole batch
    const batch = await api(
      dispatcher.url,
      "POST",
      "/v1/events/batch",
      { events: [event({ id: "own-2" }), event({ namespace: "team-b", id: "foreign-2" })] },
      TEAM_A_TOKEN,
    );
    expect(batch.status).toBe(403);
    expect(await created()).toEqual(before);
  });

  it("an unknown token is still 401, and the cluster-wide token still publishes anywhere", async () => {
    const unknown = await api(dispatcher.url, "POST", "/v1/events", event(), "nobody-s-token-0123456789abc");
    expect(unknown.status).toBe(401);
    const cluster = await api(
      dispatcher.url,
      "POST",
      "/v1/events",
      event({ namespace: "team-b", id: "cluster-1" }),
      INGEST_TOKEN,
    );
    expect(cluster.status).toBe(202);
  });
});
