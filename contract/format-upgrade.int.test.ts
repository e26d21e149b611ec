import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDelivery, settle, TEST_FANOUT_LIMITS } from "../test/support/deliveries.ts";
import { uniqueKeyTag } from "../test/support/fixtures.ts";
import { V1_LIMITS, type V1Event, v1Fanout, v1Retry, v1Settle } from "../test/support/format1.ts";
import {
  type FanoutLimits,
  fanoutEvents,
  forwardLegacyStatus,
  noteMirrorError,
  parseStatusEntry,
  promoteDue,
  readDelivery,
  readEvent,
  requestRetry,
  settleDeliveries,
} from "./deliveries.ts";
import { deliveryId } from "./delivery-id.ts";
import { type DeliveryFilter, type DeliveryPage, listDeliveries } from "./delivery-log.ts";
import type { EventType } from "./event-types.ts";
import { CONSUMER_GROUPS, type Keyspace, keyspace } from "./keys.ts";
import { notificationPayload } from "./notification.ts";
import { type Attempt, MAX_KEPT_ATTEMPTS, StoredAttemptSchema } from "./records.ts";
import type { FanoutPlanEvent } from "./scripts/fanout-events.ts";

// An upgrade with records of the previous version (format 1: hashes, JSON events, `seen:` markers,
// sorted set indexes, the `status` stream) still in Redis, written by that version's own scripts
// (test/support/format1.ts): this version reads, lists, settles, retries and promotes them, and
// nothing is lost or shown differently. Then what the new format itself must keep: the attempt
// history bounded, an event record outliving the deliveries that refer to it, an event id seen
// again after its window.

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

const NS = "team-a";
const LIMITS: FanoutLimits = { ...V1_LIMITS, deadLetterMaxLen: 100 };
const ANY = "any-namespace" as const;

/** An event of one webhook, as format 1's fan-out was given it. */
function v1Event(id: string, webhook: string, type: EventType, ingestedAt: number): V1Event {
  const occurredAt = new Date(ingestedAt).toISOString();
  const data = JSON.stringify({ ref: id, note: "tab\there, newline\nthere, 100%" });
  return {
    namespace: NS,
    id,
    type,
    occurredAt,
    ingestedAt,
    data,
    deliveries: [
      {
        id: deliveryId(NS, id, webhook),
        webhook,
        uid: `uid-${webhook}`,
        url: `https://receiver.example/${webhook}`,
        payload: notificationPayload({
          eventId: id,
          type,
          occurredAt,
          namespace: NS,
          webhook,
          dataJson: data,
        }),
        maxAttempts: 3,
      },
    ],
  };
}

/** The same event for this version's fan-out. */
function planned(event: V1Event, overrides: Partial<FanoutPlanEvent> = {}): FanoutPlanEvent {
  return {
    entryId: "",
    namespace: event.namespace,
    id: event.id,
    type: event.type as EventType,
    occurredAt: event.occurredAt,
    ingestedAt: event.ingestedAt,
    data: event.data,
    routing: "routed",
    deliveries: event.deliveries,
    ...overrides,
  };
}

function attempt(number: number, at: number, statusCode = 500): Attempt {
  return {
    number,
    startedAt: new Date(at).toISOString(),
    durationMs: 4.25,
    statusCode,
    errorCode: "http_status",
    error: `HTTP ${statusCode}`,
  };
}

async function listAll(keys: Keyspace, query: DeliveryFilter, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page: DeliveryPage = await listDeliveries(
      redis,
      query,
      cursor ? { limit, cursor } : { limit },
      keys,
    );
    ids.push(...page.items.map((item) => item.id));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return ids;
}

describe("records of the previous version (format 1)", () => {
  it("are shown, listed, settled, retried and promoted as they were; a change rewrites one packed", async () => {
    const keys = keyspace(uniqueKeyTag());
    const t0 = Date.now() - 60_000;
    const queued = v1Event("evt-queued", "orders", "job.created", t0);
    const failed = v1Event("evt-failed", "orders", "job.created", t0 + 1);
    const sent = v1Event("evt-sent", "billing", "payment.received", t0 + 2);
    for (const [i, event] of [queued, failed, sent].entries()) {
      expect(await v1Fanout(redis, keys, [event], t0 + i)).toEqual([1]);
    }
    const [q, f, s] = [queued, failed, sent].map((event) => event.deliveries[0]!);
    // format 1's life of them: FAILED, retried (token t-old), FAILED again; SENT
    expect(
      await v1Settle(
        redis,
        keys,
        { id: f!.id, version: 0, kind: "failed", attempt: attempt(1, t0 + 10) },
        t0 + 10,
      ),
    ).toBe("a");
    expect(await v1Retry(redis, keys, f!.id, "t-old", t0 + 20)).toBe("requeued");
    expect(
      await v1Settle(
        redis,
        keys,
        { id: f!.id, version: 2, kind: "failed", attempt: attempt(2, t0 + 30) },
        t0 + 30,
      ),
    ).toBe("a");
    expect(
      await v1Settle(
        redis,
        keys,
        { id: s!.id, version: 0, kind: "sent", attempt: attempt(1, t0 + 40, 200) },
        t0 + 40,
      ),
    ).toBe("a");
    for (const d of [q, f, s]) expect(await redis.type(keys.delivery(d!.id))).toBe("hash");

    // shown as they were
    expect(await readDelivery(redis, f!.id, keys)).toEqual({
      id: f!.id,
      eventId: "evt-failed",
      eventType: "job.created",
      namespace: NS,
      webhook: "orders",
      webhookUid: "uid-orders",
      url: "https://receiver.example/orders",
      payload: f!.payload,
      phase: "FAILED",
      attempts: [attempt(1, t0 + 10), attempt(2, t0 + 30)],
      maxAttempts: 3,
      cycle: 2,
      cycleAttempts: 1,
      occurredAt: failed.occurredAt,
      ingestedAt: new Date(failed.ingestedAt).toISOString(),
      createdAt: new Date(t0 + 1).toISOString(),
      updatedAt: new Date(t0 + 30).toISOString(),
      failureReason: "attempts-exhausted",
      lastRetryToken: "t-old",
      version: 3,
    });
    expect(await readEvent(redis, NS, "evt-sent", keys)).toEqual({
      id: "evt-sent",
      type: "payment.received",
      namespace: NS,
      occurredAt: sent.occurredAt,
      ingestedAt: new Date(sent.ingestedAt).toISOString(),
      data: sent.data,
      routing: "routed",
      deliveryIds: [s!.id],
    });

    // listed with those this version makes, newest first, in one walk
    const fresh = [
      v1Event("evt-new-1", "orders", "job.created", t0 + 50),
      v1Event("evt-new-2", "billing", "payment.received", t0 + 51),
    ];
    for (const [i, event] of fresh.entries()) {
      expect(
        await fanoutEvents(redis, { events: [planned(event)], invalid: [] }, LIMITS, keys, t0 + 50 + i),
      ).toEqual([1]);
    }
    const [n1, n2] = fresh.map((event) => event.deliveries[0]!.id);
    const everything = [n2, n1, s!.id, f!.id, q!.id];
    for (const limit of [1, 2, 50]) expect(await listAll(keys, {}, limit)).toEqual(everything);
    expect(await listAll(keys, { namespace: NS, webhook: "orders" }, 1)).toEqual([n1, f!.id, q!.id]);
    expect(await listAll(keys, { namespace: NS, eventType: "payment.received" }, 1)).toEqual([n2, s!.id]);
    expect(await listAll(keys, { phase: "FAILED" }, 10)).toEqual([f!.id]);
    const page = await listDeliveries(redis, { namespace: NS, phase: "SENT" }, { limit: 10 }, keys);
    expect(page.items).toEqual([
      {
        id: s!.id,
        eventId: "evt-sent",
        eventType: "payment.received",
        namespace: NS,
        webhook: "billing",
        url: "https://receiver.example/billing",
        phase: "SENT",
        attempts: 1,
        maxAttempts: 3,
        cycle: 1,
        createdAt: new Date(t0 + 2).toISOString(),
        updatedAt: new Date(t0 + 40).toISOString(),
      },
    ]);
    // a cursor handed out by the previous version goes on after its delivery
    const legacyCursor = Buffer.from(`${t0 + 2}:${s!.id}`).toString("base64url");
    expect(
      (await listDeliveries(redis, {}, { limit: 10, cursor: legacyCursor }, keys)).items.map((i) => i.id),
    ).toEqual([f!.id, q!.id]);

    // retried: a token format 1 honoured still is, a new one requeues; the record is rewritten packed
    const before = await readDelivery(redis, f!.id, keys);
    expect(await requestRetry(redis, f!.id, "t-old", keys, LIMITS, ANY)).toEqual({
      outcome: "already-honoured",
    });
    expect(await requestRetry(redis, f!.id, "t-new", keys, LIMITS, ANY)).toEqual({ outcome: "requeued" });
    expect(await redis.type(keys.delivery(f!.id))).toBe("string");
    expect(await readDelivery(redis, f!.id, keys)).toEqual({
      ...before,
      phase: "QUEUED",
      cycle: 3,
      cycleAttempts: 0,
      failureReason: undefined,
      lastRetryToken: "t-new",
      version: 4,
      updatedAt: expect.any(String),
    });
    expect(await requestRetry(redis, f!.id, "t-old", keys, LIMITS, ANY)).toEqual({
      outcome: "already-honoured",
    });
    expect(await redis.zscore(keys.logFailed, f!.id)).toBeNull();

    // settled against its version (the guard holds across the rewrite), attempts appended
    const third = attempt(3, Date.now(), 200);
    const outcome = {
      entryId: "",
      id: f!.id,
      kind: "sent" as const,
      attempt: StoredAttemptSchema.encode(third),
    };
    expect(await settleDeliveries(redis, [{ ...outcome, version: "3" }], LIMITS, keys)).toBe("s");
    expect(await settleDeliveries(redis, [{ ...outcome, version: "4" }], LIMITS, keys)).toBe("a");
    // rewritten, it keeps its own payload: it no longer needs format 1's event record
    await redis.del(keys.event(NS, "evt-failed"));
    const settled = await readDelivery(redis, f!.id, keys);
    expect(settled).toMatchObject({
      phase: "SENT",
      version: 5,
      payload: f!.payload,
      lastRetryToken: "t-new",
    });
    expect(settled!.attempts).toEqual([attempt(1, t0 + 10), attempt(2, t0 + 30), third]);

    // a hash still waiting for its retry is promoted, then settled from the work entry's version
    expect(
      await v1Settle(
        redis,
        keys,
        { id: q!.id, version: 0, kind: "retry", attempt: attempt(1, t0 + 60), due: t0 },
        t0 + 60,
      ),
    ).toBe("a");
    const queuedBefore = await redis.xlen(keys.deliveries);
    expect(await promoteDue(redis, keys, 10)).toBe(1);
    expect(await redis.xlen(keys.deliveries)).toBe(queuedBefore + 1);
    expect(
      await settleDeliveries(
        redis,
        [
          {
            entryId: "",
            id: q!.id,
            version: "1",
            kind: "sent",
            attempt: StoredAttemptSchema.encode(attempt(2, Date.now(), 200)),
          },
        ],
        LIMITS,
        keys,
      ),
    ).toBe("a");
    expect(await readDelivery(redis, q!.id, keys)).toMatchObject({
      phase: "SENT",
      payload: q!.payload,
      attempts: [attempt(1, t0 + 60), expect.anything()],
    });

    // a note of the mirror rewrites it too, and changes nothing else
    const sentBefore = await readDelivery(redis, s!.id, keys);
    expect(await noteMirrorError(redis, s!.id, "refused:\tbecause\nof, reasons", keys)).toBe(true);
    expect(await readDelivery(redis, s!.id, keys)).toEqual({
      ...sentBefore,
      mirrorError: "refused:\tbecause\nof, reasons",
    });
    expect(await redis.type(keys.delivery(s!.id))).toBe("string");
  });

  it("keep an event id they saw a duplicate until their window ends", async () => {
    const keys = keyspace(uniqueKeyTag());
    const event = v1Event("evt-seen", "orders", "job.created", Date.now());
    expect(await v1Fanout(redis, keys, [event], Date.now())).toEqual([1]);
    expect(await fanoutEvents(redis, { events: [planned(event)], invalid: [] }, LIMITS, keys)).toEqual([-1]);
    expect(await redis.type(keys.delivery(event.deliveries[0]!.id))).toBe("hash"); // left alone
  });

  it("have their status entries moved to the status stream, those an operator read but did not acknowledge too", async () => {
    const keys = keyspace(uniqueKeyTag());
    const t0 = Date.now() - 1_000;
    const events = ["a", "b", "c"].map((id, i) => v1Event(`evt-${id}`, "orders", "job.created", t0 + i));
    await v1Fanout(redis, keys, events.slice(0, 2), t0);
    // an operator of format 1 read the first entry and stopped before acknowledging it
    await redis.xgroup("CREATE", keys.legacyStatus, CONSUMER_GROUPS.mirror, "0");
    await redis.xreadgroup(
      "GROUP",
      CONSUMER_GROUPS.mirror,
      "old-operator",
      "COUNT",
      1,
      "STREAMS",
      keys.legacyStatus,
      ">",
    );
    expect(await forwardLegacyStatus(redis, keys, LIMITS)).toBe(2);
    expect(await redis.exists(keys.legacyStatus)).toBe(0);
    // a dispatcher of format 1 still running writes there again
    await v1Fanout(redis, keys, events.slice(2), t0 + 2);
    expect(await forwardLegacyStatus(redis, keys, LIMITS)).toBe(1);
    expect(await forwardLegacyStatus(redis, keys, LIMITS)).toBe(0);
    const entries = (await redis.xrange(keys.status, "-", "+")).map(([id, fields]) =>
      parseStatusEntry(id, fields),
    );
    expect(entries).toEqual(
      events.map((event, i) => ({
        deliveryId: event.deliveries[0]!.id,
        phase: "QUEUED",
        namespace: NS,
        webhook: "orders",
        eventId: event.id,
        attempts: 0,
        at: new Date(t0 + (i < 2 ? 0 : 2)).toISOString(), // the time format 1 recorded
        failureReason: undefined,
      })),
    );
  });
});

describe("the attempt history", () => {
  it(`keeps the latest ${MAX_KEPT_ATTEMPTS} attempts, and counts them all`, async () => {
    const keys = keyspace(uniqueKeyTag());
    await createDelivery(redis, keys, "hook-many");
    const total = MAX_KEPT_ATTEMPTS + 7;
    for (let n = 1; n <= total; n++) {
      const kind = n === total ? "failed" : "retry";
      const packed = StoredAttemptSchema.encode({
        ...attempt(n, Date.now()),
        responseBodyPrefix: "x".repeat(100),
      });
      expect(
        await settle(redis, keys, [
          {
            entryId: "",
            id: "hook-many",
            version: String(n - 1),
            kind,
            attempt: packed,
            due: String(Date.now() + 60_000),
          },
        ]),
      ).toBe("a");
    }
    const record = await readDelivery(redis, "hook-many", keys);
    expect(record!.attempts.map((a) => a.number)).toEqual(
      Array.from({ length: MAX_KEPT_ATTEMPTS }, (_, i) => total - MAX_KEPT_ATTEMPTS + 1 + i),
    );
    expect((await listDeliveries(redis, {}, { limit: 1 }, keys)).items[0]).toMatchObject({ attempts: total });
    const [, last] = (await redis.xrevrange(keys.status, "+", "-", "COUNT", 1))[0]!;
    expect(parseStatusEntry("0-0", last).attempts).toBe(total);
    // bounded in bytes too: about one attempt line each, not one per attempt ever made
    expect(await redis.strlen(keys.delivery("hook-many"))).toBeLessThan(MAX_KEPT_ATTEMPTS * 200);
  });
});

describe("event records", () => {
  it("live as long as a delivery that takes its payload from them", async () => {
    const keys = keyspace(uniqueKeyTag());
    const limits = { ...TEST_FANOUT_LIMITS, retentionMs: 100_000, idempotencyWindowMs: 1_000 };
    await createDelivery(redis, keys, "hook-long", limits);
    const eventKey = keys.event("ns", "evt-hook-long");
    expect(await redis.pttl(eventKey)).toBeGreaterThan(90_000);
    await redis.pexpire(eventKey, 5_000); // as if its first retention were nearly over
    // a change more than 1 % of the retention later renews the record's TTL, and the event's with it
    const later = Date.now() + 2_000;
    expect(
      await settleDeliveries(
        redis,
        [
          {
            entryId: "",
            id: "hook-long",
            version: "0",
            kind: "sent",
            attempt: StoredAttemptSchema.encode(attempt(1, later, 200)),
          },
        ],
        limits,
        keys,
        later,
      ),
    ).toBe("a");
    expect(await redis.pttl(eventKey)).toBeGreaterThan(90_000);
    expect((await readDelivery(redis, "hook-long", keys))?.payload).toBeDefined();
  });

  it("replaced by an event with the same id after the window leave the earlier deliveries their payload", async () => {
    const keys = keyspace(uniqueKeyTag());
    const limits: FanoutLimits = { ...LIMITS, idempotencyWindowMs: 1_000 };
    const t0 = Date.now() - 10_000;
    const first = v1Event("evt-again", "orders", "job.created", t0);
    const billing = {
      ...first.deliveries[0]!,
      id: deliveryId(NS, "evt-again", "billing"),
      webhook: "billing",
    };
    billing.payload = notificationPayload({
      eventId: first.id,
      type: first.type,
      occurredAt: first.occurredAt,
      namespace: NS,
      webhook: "billing",
      dataJson: first.data,
    });
    const both = planned(first, { deliveries: [first.deliveries[0]!, billing] });
    expect(await fanoutEvents(redis, { events: [both], invalid: [] }, limits, keys, t0)).toEqual([2]);
    const billingBefore = await readDelivery(redis, billing.id, keys);

    // the same id, seconds later (the window is 1 s), other data, and only "orders" subscribed now
    const again = v1Event("evt-again", "orders", "job.created", t0 + 5_000);
    again.data = '{"second":true}';
    again.deliveries[0]!.payload = notificationPayload({
      eventId: again.id,
      type: again.type,
      occurredAt: again.occurredAt,
      namespace: NS,
      webhook: "orders",
      dataJson: again.data,
    });
    expect(
      await fanoutEvents(redis, { events: [planned(again)], invalid: [] }, limits, keys, t0 + 5_000),
    ).toEqual([1]);

    expect(await readDelivery(redis, billing.id, keys)).toEqual(billingBefore); // the earlier event's payload
    expect((await readDelivery(redis, again.deliveries[0]!.id, keys))?.payload).toBe(
      again.deliveries[0]!.payload,
    );
    expect((await readEvent(redis, NS, "evt-again", keys))?.data).toBe('{"second":true}');
    // listed once, at its new place
    expect(await listAll(keys, {}, 1)).toEqual([again.deliveries[0]!.id, billing.id]);
  });
});
