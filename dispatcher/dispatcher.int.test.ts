import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { parseStatusEntry, readDelivery, readEvent } from "../contract/deliveries.ts";
import { deliveryId } from "../contract/delivery-id.ts";
import { readEndpointHealth } from "../contract/endpoint-health.ts";
import type { DeliveryPhase, DeliveryRecord } from "../contract/records.ts";
import { type NamespaceRoutingInput, writeNamespaceRouting } from "../contract/routing-config.ts";
import { generateSigningKey } from "../contract/signing-keys.ts";
import {
  api,
  eventually,
  OTHER_SECRET,
  routeNamespaces,
  SECRET,
  TEST_SECRET_BOX,
  testRouting,
  testSettings,
} from "../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../test/support/receiver.ts";
import { verifiesV1a } from "../test/support/verify-v1a.ts";
import type { SettingsInput } from "./config.ts";
import { type Dispatcher, startDispatcher } from "./dispatcher.ts";
import { PRODUCT_VERSION } from "./version.ts";

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

/** A dispatcher in its own keyspace, routing `routings`. */
async function start(
  routings: NamespaceRoutingInput[],
  overrides: Partial<SettingsInput> = {},
): Promise<Dispatcher> {
  dispatcher = await startDispatcher(testSettings(inject("redisUrl"), overrides));
  for (const routing of routings) await applyRouting(routing);
  return dispatcher;
}

/** Writes a namespace's routing and waits until the dispatcher applies it. */
async function applyRouting(routing: NamespaceRoutingInput): Promise<void> {
  await routeNamespaces(redis, dispatcher!, [routing], 2_000);
}

async function ingest(
  type: string,
  namespace: string,
  id: string,
  data: Record<string, unknown> = { ref: id },
) {
  const response = await api(dispatcher!.url, "POST", "/v1/events", { type, namespace, id, data });
  expect(response.status).toBe(202);
}

async function waitForPhase(id: string, phase: DeliveryPhase, timeoutMs = 10_000): Promise<DeliveryRecord> {
  return eventually(
    async () => {
      const record = await readDelivery(redis, id, dispatcher!.keys);
      return record?.phase === phase ? record : undefined;
    },
    timeoutMs,
    `${id} to be ${phase}`,
  );
}

/** A unique receiver path per test, so tests sharing the receiver never count each other's requests. */
let pathCounter = 0;
const uniquePath = (name: string) => `/${name}-${++pathCounter}`;

describe("delivery contract", () => {
  it("POSTs a signed notification that standardwebhooks and svix verify, with the documented headers", async () => {
    const path = uniquePath("signed");
    await start([
      testRouting("team-a", [
        {
          name: "orders",
          uid: "uid-1",
          event: "job.created",
          url: receiver.url(path),
          headers: { "X-Team": "a", "User-Agent": "evil", "webhook-id": "forged" },
        },
      ]),
    ]);
    await ingest("job.created", "team-a", "evt-1", { jobId: "j-42" });
    const [request] = await receiver.waitForRequests(1, path);
    const headers = request!.headers as Record<string, string>;

    expect(new StandardWebhook(SECRET).verify(request!.body, headers)).toEqual({
      id: "evt-1",
      type: "job.created",
      timestamp: expect.any(String),
      namespace: "team-a",
      webhook: "orders",
      data: { jobId: "j-42" },
    });
    expect(new SvixWebhook(SECRET).verify(request!.body, headers)).toMatchObject({ id: "evt-1" });
    expect(headers["content-type"]).toBe("application/json");
    expect(headers["user-agent"]).toBe(`Dataforce-Webhooks/${PRODUCT_VERSION}`);
    expect(headers["x-team"]).toBe("a");
    expect(headers["webhook-id"]).toBe(deliveryId("team-a", "evt-1", "orders"));
    expect(Math.abs(Number(headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(5);

    const record = await waitForPhase(headers["webhook-id"]!, "SENT");
    expect(record).toMatchObject({
      eventId: "evt-1",
      webhook: "orders",
      webhookUid: "uid-1",
      payload: request!.body,
    });
    expect(record.attempts).toEqual([
      {
        number: 1,
        startedAt: expect.any(String),
        durationMs: expect.any(Number),
        statusCode: 200,
        responseBodyPrefix: "ok",
      },
    ]);
  });

  it("signs with ed25519 (v1a) when the namespace's key is whsk_; the receiver needs only the whpk_", async () => {
    const path = uniquePath("v1a");
    const pair = generateSigningKey();
    await start([
      testRouting("team-a", [{ name: "orders", event: "job.created", url: receiver.url(path) }], {
        signingSecrets: [pair.privateKey],
      }),
    ]);
    await ingest("job.created", "team-a", "evt-v1a");
    const [request] = await receiver.waitForRequests(1, path);
    expect(request!.headers["webhook-signature"]).toMatch(/^v1a,\S+$/);
    expect(await verifiesV1a(pair.publicKey, request!.headers, request!.body)).toBe(true);
    // the private key never leaves the dispatcher's memory: not in the record, not in Redis in clear
    const record = await waitForPhase(deliveryId("team-a", "evt-v1a", "orders"), "SENT");
    expect(JSON.stringify(record)).not.toContain(pair.privateKey.slice(5));
    expect(JSON.stringify(await redis.hgetall(dispatcher!.keys.routing))).not.toContain(
      pair.privateKey.slice(5),
    );
  });

  it("counts work whose record vanished from Redis as lost, whether read or in flight", async () => {
    const path = uniquePath("lost");
    receiver.on(path, { kind: "respond", status: 200, delayMs: 400 });
    await start([testRouting("team-a", [{ name: "orders", event: "job.created", url: receiver.url(path) }])]);
    const lost = async (at: string) =>
      (await dispatcher!.metrics.lost.get()).values.find((v) => v.labels.at === at)?.value;
    await ingest("job.created", "team-a", "evt-lost");
    await receiver.waitForRequests(1, path); // the attempt is in flight…
    await redis.del(dispatcher!.keys.delivery(deliveryId("team-a", "evt-lost", "orders"))); // …and Redis loses it
    await eventually(async () => ((await lost("settle")) === 1 ? true : undefined), 5_000, "lost at settle");

    // queued work without its record
    await redis.xadd(dispatcher!.keys.deliveries, "*", "id", "ghost-delivery");
    await eventually(async () => ((await lost("read")) === 1 ? true : undefined), 5_000, "lost at read");
  });

  it("shares one consumer group between two replicas: each delivery made once, both replicas working", {
    timeout: 90_000,
  }, async () => {
    const path = uniquePath("replicas");
    // A second POST of one delivery is the at-least-once promise when an attempt times out or its
    // work is claimed, not what this test is about (the claim and timeout tests cover those). On a
    // loaded machine this process's receiver may answer later than the suite's usual 1 s attempt
    // timeout (traced: every duplicate seen was a retry after one), and a delivery may wait longer
    // than 1 s in its replica's queue: so attempts time out after 30 s and claims wait 10 s.
    const noEarlyClaims = { claimIdleMs: 10_000 };
    const routing = testRouting("team-a", [
      { name: "orders", event: "job.created", url: receiver.url(path) },
    ]);
    routing.delivery = { ...routing.delivery, timeoutMs: 30_000 };
    const first = await start([routing], noEarlyClaims);
    const second = await startDispatcher(
      testSettings(inject("redisUrl"), {
        ...noEarlyClaims,
        keyTag: first.keys.prefix.slice(1, -2),
        consumerName: "replica-2",
      }),
    );
    try {
      const ids = Array.from({ length: 400 }, (_, i) => `evt-replica-${i}`);
      for (let i = 0; i < ids.length; i += 100) {
        const events = ids
          .slice(i, i + 100)
          .map((id) => ({ type: "job.created", namespace: "team-a", id, data: {} }));
        const url = i % 200 === 0 ? first.url : second.url; // producers reach either replica
        expect((await api(url, "POST", "/v1/events/batch", { events })).status).toBe(202);
      }
      // generous: a correctness test (each once, both working), run on shared, loaded machines
      const requests = await receiver.waitForRequests(ids.length, path, 60_000);
      const byId = new Map<string, number>();
      for (const request of requests) {
        const id = String(request.headers["webhook-id"]);
        byId.set(id, (byId.get(id) ?? 0) + 1);
      }
      expect(byId.size).toBe(ids.length);
      expect([...byId.values()].every((count) => count === 1)).toBe(true);
      const attempted = async (replica: Dispatcher) =>
        (await replica.metrics.attempts.get()).values.reduce((sum, v) => sum + v.value, 0);
      // an attempt is counted once its response is back: the receiver has seen the last requests
      // before their replicas have their answers (a full run missed one by reading at once)
      const [a, b] = await eventually(
        async () => {
          const counts = [await attempted(first), await attempted(second)] as const;
          return counts[0] + counts[1] >= ids.length ? counts : undefined;
        },
        10_000,
        "every attempt counted",
      );
      expect(a + b).toBe(ids.length);
      expect(Math.min(a, b)).toBeGreaterThan(0);
    } finally {
      await second.stop();
    }
  });

  it("signs with every secret while one rotates", async () => {
    const path = uniquePath("rotating");
    await start([
      testRouting("team-a", [{ name: "orders", event: "job.created", url: receiver.url(path) }], {
        signingSecrets: [OTHER_SECRET, SECRET],
      }),
    ]);
    await ingest("job.created", "team-a", "evt-rot");
    const [request] = await receiver.waitForRequests(1, path);
    const headers = request!.headers as Record<string, string>;
    expect(headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    for (const secret of [SECRET, OTHER_SECRET]) {
      expect(() => new StandardWebhook(secret).verify(request!.body, headers)).not.toThrow();
    }
  });

  it.each([
    ["HTTP 500", { kind: "respond", status: 500, body: "boom" } as const, "http_status", 500],
    ["a timeout", { kind: "hang" } as const, "timeout", undefined],
    ["a connection reset", { kind: "reset" } as const, "connection_reset", undefined],
    [
      "a redirect",
      { kind: "respond", status: 302, headers: { location: "/elsewhere" } } as const,
      "redirect",
      302,
    ],
  ])(
    "counts %s as a failed attempt: exactly 3 attempts, then FAILED",
    async (_name, behaviour, errorCode, statusCode) => {
      const path = uniquePath("failing");
      receiver.on(path, behaviour);
      receiver.on("/elsewhere", { kind: "respond", status: 200 });
      const routing = testRouting("team-a", [
        { name: "hook", event: "job.updated", url: receiver.url(path) },
      ]);
      routing.delivery = {
        maxAttempts: 3,
        timeoutMs: 150,
        backoff: { initialDelayMs: 10, maxDelayMs: 50, multiplier: 2 },
      };
      await start([routing]);
      await ingest("job.updated", "team-a", "evt-fail");

      const record = await waitForPhase(deliveryId("team-a", "evt-fail", "hook"), "FAILED");
      expect(record.failureReason).toBe("attempts-exhausted");
      expect(
        record.attempts.map((attempt) => [attempt.number, attempt.errorCode, attempt.statusCode]),
      ).toEqual([1, 2, 3].map((n) => [n, errorCode, statusCode]));
      if (errorCode === "timeout") expect(record.attempts[0]!.durationMs).toBeGreaterThanOrEqual(140);
      if (statusCode === 500) expect(record.attempts[0]!.responseBodyPrefix).toBe("boom");
      await sleep(200);
      expect(receiver.requests(path)).toHaveLength(3);
      expect(receiver.requests("/elsewhere")).toHaveLength(0);
      expect(new Set(receiver.requests(path).map((r) => r.headers["webhook-id"])).size).toBe(1);
    },
  );

  it("holds a dead endpoint's deliveries back while its circuit is open, attempts unspent, and delivers them once a probe succeeds", async () => {
    const path = uniquePath("circuit");
    receiver.on(path, { kind: "respond", status: 503 });
    const routing = testRouting("team-a", [{ name: "hook", event: "job.created", url: receiver.url(path) }]);
    routing.delivery = {
      ...routing.delivery,
      backoff: { initialDelayMs: 50, maxDelayMs: 100, multiplier: 2 },
      circuitBreaker: { consecutiveFailures: 3, cooldownMs: 400, maxCooldownMs: 800 },
    };
    await start([routing]);
    const ids = Array.from({ length: 10 }, (_, i) => `evt-circuit-${i}`);
    for (const id of ids) await ingest("job.created", "team-a", id);
    const deliveries = ids.map((id) => deliveryId("team-a", id, "hook"));

    // Down for a while: after 3 failures in a row only probes reach it (one per cooldown, which
    // doubles up to 800 ms), where 10 deliveries × 3 attempts would have made 30 requests. (First
    // attempts already under way when the circuit opens still arrive: up to 10 on a slow machine.)
    await sleep(2_500);
    const whileDown = receiver.requests(path).length;
    expect(whileDown).toBeGreaterThanOrEqual(3);
    expect(whileDown).toBeLessThan(18);
    const records = await Promise.all(deliveries.map((id) => readDelivery(redis, id, dispatcher!.keys)));
    expect(records.filter((record) => record?.phase === "QUEUED").length).toBeGreaterThanOrEqual(7);
    const deferred = (await dispatcher!.metrics.deferred.get()).values.find(
      (value) => value.labels.reason === "circuit-open",
    );
    expect(deferred?.value ?? 0).toBeGreaterThan(0);
    // published for the operator: the open circuit, the run of failures, why, the next probe
    const down = await eventually(async () => {
      const health = (await readEndpointHealth(redis, dispatcher!.keys)).get("team-a/hook");
      return health?.state === "CircuitOpen" ? health : undefined;
    });
    expect(down).toMatchObject({ lastFailureReason: "HTTP 503", failureRatio: 1 });
    expect(down.consecutiveFailures).toBeGreaterThanOrEqual(3);
    expect(down.firstFailureAt).toBeLessThanOrEqual(down.lastFailureAt!);
    expect(down.nextProbeAt).toBeGreaterThan(down.firstFailureAt!);
    expect(JSON.stringify(down)).not.toContain(path); // no URL

    // Back: the next probe succeeds, the circuit closes, every delivery still QUEUED is SENT.
    receiver.on(path, { kind: "respond", status: 200 });
    const queued = deliveries.filter((_, i) => records[i]?.phase === "QUEUED");
    for (const id of queued) await waitForPhase(id, "SENT", 15_000);
    for (const id of queued) {
      const record = await readDelivery(redis, id, dispatcher!.keys);
      expect(record!.attempts.length).toBeLessThanOrEqual(3);
    }
    const back = await eventually(async () => {
      const health = (await readEndpointHealth(redis, dispatcher!.keys)).get("team-a/hook");
      return health?.state !== "CircuitOpen" && health?.consecutiveFailures === 0 ? health : undefined;
    });
    expect(back.firstFailureAt).toBeUndefined();
    expect(back.nextProbeAt).toBeUndefined();
  });

  it("holds an auto-paused webhook's deliveries, QUEUED with no attempt, until the routing resumes it", async () => {
    const path = uniquePath("auto-paused");
    receiver.on(path, { kind: "respond", status: 200 });
    const hook = { name: "hook", event: "job.created" as const, url: receiver.url(path) };
    await start([testRouting("team-a", [{ ...hook, autoPaused: true }])], { autoPausedRecheckMs: 500 });
    await ingest("job.created", "team-a", "evt-held");
    const id = deliveryId("team-a", "evt-held", "hook");
    await eventually(async () => {
      const held = (await dispatcher!.metrics.deferred.get()).values.find(
        (value) => value.labels.reason === "auto-paused",
      );
      return (held?.value ?? 0) > 0 ? true : undefined;
    });
    const record = await readDelivery(redis, id, dispatcher!.keys);
    expect([record?.phase, record?.attempts.length]).toEqual(["QUEUED", 0]);
    expect(receiver.requests(path)).toHaveLength(0);

    // resumed: the held delivery is looked at again (DISPATCHER_AUTO_PAUSED_RECHECK_MS) and sent
    await applyRouting(testRouting("team-a", [hook]));
    const sent = await waitForPhase(id, "SENT");
    expect(sent.attempts).toHaveLength(1);
  });

  it("retries a FAILED delivery on request: QUEUED with a fresh budget of 3 attempts, once per token", async () => {
    const path = uniquePath("retry");
    receiver.on(path, { kind: "respond", status: 503 });
    const routing = testRouting("team-a", [
      { name: "hook", event: "payment.received", url: receiver.url(path) },
    ]);
    // about attempts: six in a row to a dead endpoint, which the (default) circuit breaker would hold back
    routing.delivery = { ...routing.delivery, circuitBreaker: { consecutiveFailures: 0 } };
    await start([routing]);
    await ingest("payment.received", "team-a", "evt-retry");
    const id = deliveryId("team-a", "evt-retry", "hook");
    await waitForPhase(id, "FAILED");
    expect(receiver.requests(path)).toHaveLength(3);

    const retry = await api(dispatcher!.url, "POST", `/v1/deliveries/${id}/retry`, { token: "ticket-1" });
    expect(retry).toEqual({ status: 202, body: { id, outcome: "requeued", token: "ticket-1" } });
    const again = await api(dispatcher!.url, "POST", `/v1/deliveries/${id}/retry`, { token: "ticket-1" });
    expect(again.body).toMatchObject({ outcome: "already-honoured" });

    const record = await eventually(async () => {
      const current = await readDelivery(redis, id, dispatcher!.keys);
      return current?.phase === "FAILED" && current.cycle === 2 ? current : undefined;
    });
    expect(record.attempts.map((attempt) => attempt.number)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(record.lastRetryToken).toBe("ticket-1");
    await sleep(100);
    expect(receiver.requests(path)).toHaveLength(6);

    const phases = (await redis.xrange(dispatcher!.keys.status, "-", "+"))
      .map(([id, fields]) => parseStatusEntry(id, fields))
      .filter((entry) => entry.deliveryId === id)
      .map((entry) => `${entry.phase}/${entry.attempts}`);
    expect(phases).toEqual([
      "QUEUED/0",
      "QUEUED/1",
      "QUEUED/2",
      "FAILED/3",
      "QUEUED/3",
      "QUEUED/4",
      "QUEUED/5",
      "FAILED/6",
    ]);
  });

  it("stops at once on 410 Gone and on webhook-delivery: abort-message", async () => {
    const gone = uniquePath("gone");
    const abort = uniquePath("abort");
    receiver.on(gone, { kind: "respond", status: 410 });
    receiver.on(abort, { kind: "respond", status: 500, headers: { "webhook-delivery": "abort-message" } });
    await start([
      testRouting("team-a", [
        { name: "gone", event: "job.created", url: receiver.url(gone) },
        { name: "abort", event: "job.created", url: receiver.url(abort) },
      ]),
    ]);
    await ingest("job.created", "team-a", "evt-stop");
    const goneRecord = await waitForPhase(deliveryId("team-a", "evt-stop", "gone"), "FAILED");
    const abortRecord = await waitForPhase(deliveryId("team-a", "evt-stop", "abort"), "FAILED");
    expect([goneRecord.failureReason, goneRecord.attempts.length]).toEqual(["endpoint-gone", 1]);
    expect([abortRecord.failureReason, abortRecord.attempts.length]).toEqual(["aborted-by-receiver", 1]);
    const failed = (await redis.xrange(dispatcher!.keys.status, "-", "+"))
      .map(([id, fields]) => parseStatusEntry(id, fields))
      .filter((entry) => entry.phase === "FAILED");
    expect(failed.map((entry) => entry.failureReason).sort()).toEqual([
      "aborted-by-receiver",
      "endpoint-gone",
    ]);
  });

  it("waits at least Retry-After before the next attempt", async () => {
    const path = uniquePath("busy");
    receiver.on(path, (_request, count) =>
      count === 1
        ? { kind: "respond", status: 429, headers: { "retry-after": "1" } }
        : { kind: "respond", status: 200 },
    );
    const routing = testRouting("team-a", [{ name: "hook", event: "job.created", url: receiver.url(path) }]);
    routing.delivery = { backoff: { initialDelayMs: 10, maxDelayMs: 5_000, multiplier: 2 } };
    await start([routing]);
    await ingest("job.created", "team-a", "evt-429");
    const [first, second] = await receiver.waitForRequests(2, path, 5_000);
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(950);
    await waitForPhase(deliveryId("team-a", "evt-429", "hook"), "SENT");
  });
});

describe("routing", () => {
  it("sends nothing for a disabled integration or a paused webhook, and records why", async () => {
    const disabled = uniquePath("disabled");
    const paused = uniquePath("paused");
    const active = uniquePath("active");
    await start([
      testRouting("off", [{ name: "hook", event: "job.created", url: receiver.url(disabled) }], {
        enabled: false,
      }),
      testRouting("on", [
        { name: "paused", event: "job.created", url: receiver.url(paused), paused: true },
        { name: "active", event: "job.created", url: receiver.url(active) },
      ]),
    ]);
    await ingest("job.created", "off", "evt-a");
    await ingest("job.created", "on", "evt-b");
    await receiver.waitForRequests(1, active);
    const offEvent = await eventually(() =>
      readEvent(redis, "off", "evt-a", dispatcher!.keys).then((e) => e ?? undefined),
    );
    expect(offEvent).toMatchObject({ routing: "integration-disabled", deliveryIds: [] });
    const onEvent = await readEvent(redis, "on", "evt-b", dispatcher!.keys);
    expect(onEvent?.deliveryIds).toEqual([deliveryId("on", "evt-b", "active")]);
    await sleep(200);
    expect(receiver.requests(disabled)).toHaveLength(0);
    expect(receiver.requests(paused)).toHaveLength(0);
  });

  it("applies configuration changes within about a second, without restart", async () => {
    const path = uniquePath("late");
    await start([testRouting("team-a", [])], { routingPollMs: 1_000 });
    await writeNamespaceRouting(
      redis,
      testRouting("team-a", [{ name: "late", event: "job.created", url: receiver.url(path) }]),
      dispatcher!.keys,
      TEST_SECRET_BOX,
    );
    const written = Date.now();
    await eventually(async () => {
      await ingest("job.created", "team-a", `evt-${Date.now()}`);
      return receiver.requests(path).length > 0 ? true : undefined;
    }, 2_000);
    expect(Date.now() - written).toBeLessThan(1_500);
  });

  it("fails deliveries whose webhook was removed or whose integration was disabled before their attempt", async () => {
    const path = uniquePath("removed");
    receiver.on(path, { kind: "respond", status: 500 });
    const routing = testRouting("team-a", [{ name: "hook", event: "job.created", url: receiver.url(path) }]);
    routing.delivery = { backoff: { initialDelayMs: 500, maxDelayMs: 500, multiplier: 1 } };
    await start([routing]);
    await ingest("job.created", "team-a", "evt-removed");
    await receiver.waitForRequests(1, path);
    await applyRouting({ ...routing, webhooks: [] });
    const record = await waitForPhase(deliveryId("team-a", "evt-removed", "hook"), "FAILED");
    expect(record.failureReason).toBe("webhook-removed");
    expect(record.attempts).toHaveLength(1);
  });
});

describe("destination policy", () => {
  it("refuses loopback destinations unless allowlisted, on the resolved address", async () => {
    const path = uniquePath("ssrf");
    await start(
      [
        testRouting("team-a", [
          { name: "literal", event: "job.created", url: receiver.url(path) },
          { name: "named", event: "job.created", url: receiver.url(path).replace("127.0.0.1", "localhost") },
        ]),
      ],
      { allowedDestinations: "" },
    );
    await ingest("job.created", "team-a", "evt-ssrf");
    for (const name of ["literal", "named"]) {
      const record = await waitForPhase(deliveryId("team-a", "evt-ssrf", name), "FAILED");
      expect(record.failureReason).toBe("destination-refused");
      expect(record.attempts).toMatchObject([{ errorCode: "destination_refused" }]);
      expect(record.attempts[0]!.error).toContain("destination not allowed");
    }
    // a name's resolved address is not disclosed in the log (it would map internal DNS)
    const named = await waitForPhase(deliveryId("team-a", "evt-ssrf", "named"), "FAILED");
    expect(named.attempts[0]!.error).not.toMatch(/127\.0\.0\.1|::1/);
    expect(receiver.requests(path)).toHaveLength(0);
  });

  it("refuses plain http unless the namespace allows it", async () => {
    const path = uniquePath("plain");
    await start([
      testRouting("team-a", [{ name: "hook", event: "job.created", url: receiver.url(path) }], {
        allowPlainHttp: false,
      }),
    ]);
    await ingest("job.created", "team-a", "evt-plain");
    const record = await waitForPhase(deliveryId("team-a", "evt-plain", "hook"), "FAILED");
    expect(record.attempts[0]!.error).toMatch(/plain http/);
    expect(receiver.requests(path)).toHaveLength(0);
  });
});

describe("operations", () => {
  it("serves health, readiness and Prometheus metrics", async () => {
    const path = uniquePath("metrics");
    await start([testRouting("team-a", [{ name: "hook", event: "job.created", url: receiver.url(path) }])]);
    await ingest("job.created", "team-a", "evt-m");
    await waitForPhase(deliveryId("team-a", "evt-m", "hook"), "SENT");
    expect((await fetch(`${dispatcher!.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${dispatcher!.url}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([
      200,
      { status: "ready", checks: { redis: true, configuration: true } },
    ]);
    const metrics = await (await fetch(`${dispatcher!.url}/metrics`)).text();
    for (const line of [
      'dataforce_dispatcher_events_ingested_total{result="accepted"} 1',
      'dataforce_dispatcher_events_fanned_out_total{routing="routed"} 1',
      'dataforce_dispatcher_deliveries_completed_total{phase="SENT",reason=""} 1',
      'dataforce_dispatcher_delivery_attempts_total{outcome="success"} 1',
      "dataforce_dispatcher_delivery_ingest_to_sent_seconds_count 1",
      'dataforce_dispatcher_delivery_attempt_duration_seconds_count{outcome="success"} 1',
      'dataforce_dispatcher_stream_length{stream="status"} 2',
      'dataforce_dispatcher_stream_pending{stream="deliveries"} 0',
      "dataforce_dispatcher_scheduled_retries 0",
      "dataforce_dispatcher_routing_revision 1",
      "process_resident_memory_bytes",
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect(metrics).toContain(line);
    }
  });

  it("is not ready before its configuration is loaded or while stopping", async () => {
    await start([]);
    const stopping = dispatcher!.stop();
    const response = await fetch(`${dispatcher!.url}/readyz`).catch(() => null);
    expect(response === null || response.status === 503).toBe(true);
    await stopping;
    dispatcher = undefined;
  });
});
