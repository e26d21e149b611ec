import { describe, expect, it } from "vitest";
import type { DeliveryRecord } from "../../contract/records.ts";
import type { WebhookEvent } from "../api/v1alpha1/index.ts";
import { labelValue, planLostWrites, planMirrorWrites, shouldMirror } from "./webhook-event.ts";

const now = new Date("2026-03-01T12:00:00Z");

function record(overrides: Partial<DeliveryRecord> = {}): DeliveryRecord {
  return {
    id: "crm-abcdefghijklmnopqrst",
    eventId: "evt_1",
    eventType: "appointment.completed",
    namespace: "acme",
    webhook: "crm",
    webhookUid: "crm-uid",
    url: "https://crm.example/hook",
    payload: '{"id":"evt_1"}',
    phase: "QUEUED",
    attempts: [],
    maxAttempts: 3,
    cycle: 1,
    cycleAttempts: 0,
    occurredAt: "2026-03-01T11:59:00Z",
    ingestedAt: "2026-03-01T11:59:00.100Z",
    createdAt: "2026-03-01T11:59:00.100Z",
    updatedAt: "2026-03-01T11:59:00.100Z",
    version: 1,
    ...overrides,
  };
}

const attempt = (number: number, statusCode: number, error?: string) => ({
  number,
  startedAt: `2026-03-01T11:59:0${number}.000Z`,
  durationMs: 12.4,
  statusCode,
  ...(error ? { error, errorCode: "http_status" as const } : {}),
});

/** What the API server holds after the writes of `planMirrorWrites` (labels and status applied). */
function applied(
  existing: WebhookEvent | undefined,
  writes: ReturnType<typeof planMirrorWrites>,
): WebhookEvent {
  let object = existing ? structuredClone(existing) : undefined;
  for (const write of writes) {
    if (write.verb === "create")
      object = { ...structuredClone(write.object), metadata: { ...write.object.metadata, generation: 1 } };
    else if (write.verb === "patchLabels")
      object!.metadata.labels = { ...object!.metadata.labels, ...write.patch.metadata.labels };
    else {
      const status = { ...object!.status, ...write.patch.status } as Record<string, unknown>;
      for (const [key, value] of Object.entries(status)) if (value === null) delete status[key];
      object!.status = status;
    }
  }
  return object!;
}

describe("planMirrorWrites", () => {
  it("writes a delivery already SENT when first seen once: a create and its status", () => {
    const sent = record({ phase: "SENT", attempts: [attempt(1, 200)], cycleAttempts: 1 });
    const writes = planMirrorWrites(undefined, sent, "crm-uid", now);
    expect(writes.map((w) => w.verb)).toEqual(["create", "patchStatus"]);
    const created = writes[0]?.verb === "create" ? writes[0].object : undefined;
    expect(created?.metadata).toEqual({
      name: "crm-abcdefghijklmnopqrst",
      namespace: "acme",
      labels: {
        "webhooks.dataforce.io/webhook": "crm",
        "webhooks.dataforce.io/event-type": "appointment.completed",
        "webhooks.dataforce.io/phase": "SENT",
      },
      ownerReferences: [
        {
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "Webhook",
          name: "crm",
          uid: "crm-uid",
          controller: true,
        },
      ],
    });
    expect(created?.spec).toEqual({
      deliveryId: "crm-abcdefghijklmnopqrst",
      eventId: "evt_1",
      eventType: "appointment.completed",
      webhook: "crm",
      url: "https://crm.example/hook",
      occurredAt: "2026-03-01T11:59:00Z",
      payload: '{"id":"evt_1"}',
    });
    expect(writes[1]).toEqual({
      verb: "patchStatus",
      patch: {
        status: {
          observedGeneration: 1,
          phase: "SENT",
          attempts: 1,
          maxAttempts: 3,
          attemptHistory: [{ number: 1, time: "2026-03-01T11:59:01.000Z", durationMs: 12, statusCode: 200 }],
          nextAttemptAt: null,
          conditions: [
            {
              type: "Ready",
              status: "True",
              reason: "Sent",
              message: "delivered on attempt 1 (HTTP 200)",
              observedGeneration: 1,
              lastTransitionTime: "2026-03-01T12:00:00Z",
            },
          ],
        },
      },
    });
  });

  it("follows a known delivery with a status write, plus a label write when the phase changes", () => {
    const queued = record({
      attempts: [attempt(1, 500, "HTTP 500")],
      cycleAttempts: 1,
      nextAttemptAt: "2026-03-01T12:00:05.000Z",
    });
    const first = applied(undefined, planMirrorWrites(undefined, queued, "crm-uid", now));
    expect(first.status).toMatchObject({
      phase: "QUEUED",
      attempts: 1,
      nextAttemptAt: "2026-03-01T12:00:05.000Z",
    });
    expect(first.status?.conditions?.[0]).toMatchObject({
      reason: "Queued",
      message: "1 of 3 attempts made; last: HTTP 500: HTTP 500",
    });

    const stillQueued = record({
      ...queued,
      attempts: [attempt(1, 500, "HTTP 500"), attempt(2, 503, "HTTP 503")],
      cycleAttempts: 2,
    });
    expect(planMirrorWrites(first, stillQueued, "crm-uid", now).map((w) => w.verb)).toEqual(["patchStatus"]);

    const failed = record({
      phase: "FAILED",
      attempts: [attempt(1, 500, "HTTP 500"), attempt(2, 503, "HTTP 503"), attempt(3, 500, "HTTP 500")],
      cycleAttempts: 3,
      failureReason: "attempts-exhausted",
    });
    const writes = planMirrorWrites(first, failed, "crm-uid", now);
    expect(writes.map((w) => w.verb)).toEqual(["patchStatus", "patchLabels"]);
    expect(writes[1]).toEqual({
      verb: "patchLabels",
      patch: { metadata: { labels: { "webhooks.dataforce.io/phase": "FAILED" } } },
    });
    const after = applied(first, writes);
    expect(after.status).not.toHaveProperty("nextAttemptAt");
    expect(after.status?.conditions?.[0]).toMatchObject({ status: "False", reason: "Failed" });
    expect(after.status?.conditions?.[0]?.message).toMatch(/^attempts-exhausted after 3 of 3 attempts/);
  });

  it("writes nothing for a delivery the object already shows, and keeps lastRetryToken", () => {
    const sent = record({ phase: "SENT", attempts: [attempt(1, 200)], cycleAttempts: 1 });
    const object = applied(undefined, planMirrorWrites(undefined, sent, "crm-uid", now));
    object.status = { ...object.status, lastRetryToken: "t1" };
    const later = new Date(now.getTime() + 60_000);
    expect(planMirrorWrites(object, sent, "crm-uid", later)).toEqual([]);
    const patch = planMirrorWrites(
      object,
      record({ ...sent, attempts: [attempt(1, 200), attempt(2, 200)] }),
      "crm-uid",
      later,
    );
    expect(patch).toHaveLength(1);
    expect(patch[0]?.verb === "patchStatus" && patch[0].patch.status).not.toHaveProperty("lastRetryToken");
  });

  it("keeps the last 50 attempts and bounds error texts", () => {
    const many = Array.from({ length: 60 }, (_, i) => ({
      ...attempt(i + 1, 500, "x".repeat(3000)),
      startedAt: now.toISOString(),
    }));
    const writes = planMirrorWrites(undefined, record({ phase: "FAILED", attempts: many }), "crm-uid", now);
    const status =
      writes[1]?.verb === "patchStatus"
        ? (writes[1].patch.status as {
            attemptHistory: Array<{ number: number; error: string }>;
            attempts: number;
          })
        : undefined;
    expect(status?.attempts).toBe(60);
    expect(status?.attemptHistory).toHaveLength(50);
    expect(status?.attemptHistory[0]?.number).toBe(11);
    expect(status?.attemptHistory[0]?.error.length).toBe(1024);
  });
});

describe("how GitOps tools read a WebhookEvent (kstatus's Reconciling and Stalled)", () => {
  const types = (object: WebhookEvent) =>
    Object.fromEntries((object.status?.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]));

  it("QUEUED is Reconciling, FAILED Stalled until a retry queues it again, SENT neither", () => {
    const queued = applied(undefined, planMirrorWrites(undefined, record(), "crm-uid", now));
    expect(types(queued)).toEqual({ Ready: "False/Queued", Reconciling: "True/Queued" });

    const failed = applied(
      queued,
      planMirrorWrites(
        queued,
        record({ phase: "FAILED", attempts: [attempt(1, 500, "HTTP 500")], cycleAttempts: 1 }),
        "crm-uid",
        now,
      ),
    );
    expect(types(failed)).toEqual({ Ready: "False/Failed", Stalled: "True/Failed" });
    const stalled = failed.status?.conditions?.find((c) => c.type === "Stalled");
    expect(stalled?.message).toMatch(/annotate webhooks.dataforce.io\/retry=<token> to retry$/);
    expect(stalled?.observedGeneration).toBe(1);

    const retried = applied(
      failed,
      planMirrorWrites(failed, record({ attempts: [attempt(1, 500, "HTTP 500")], cycle: 2 }), "crm-uid", now),
    );
    expect(types(retried)).toEqual({ Ready: "False/Queued", Reconciling: "True/Queued" });

    const sent = applied(
      retried,
      planMirrorWrites(
        retried,
        record({ phase: "SENT", attempts: [attempt(1, 500, "HTTP 500"), attempt(2, 200)], cycle: 2 }),
        "crm-uid",
        now,
      ),
    );
    expect(types(sent)).toEqual({ Ready: "True/Sent" });
  });

  it("a delivery lost with Redis's data is Stalled/Lost", () => {
    const queued = applied(undefined, planMirrorWrites(undefined, record(), "crm-uid", now));
    const lost = applied(queued, planLostWrites(queued, now));
    expect(types(lost)).toEqual({ Ready: "False/Lost", Stalled: "True/Lost" });
  });
});

describe("what the CRD's bounds cannot hold", () => {
  it("mirrors a payload longer than a WebhookEvent holds as its beginning, marked truncated", () => {
    const long = JSON.stringify({ data: "x".repeat(70_000) });
    const [create] = planMirrorWrites(undefined, record({ payload: long }), "crm-uid", now);
    if (create?.verb !== "create") throw new Error("expected a create");
    expect(create.object.spec.payload).toBe(long.slice(0, 65_536));
    expect(create.object.spec.payloadTruncated).toBe(true);
    const [whole] = planMirrorWrites(undefined, record(), "crm-uid", now);
    expect(whole?.verb === "create" && whole.object.spec.payloadTruncated).toBe(undefined);
  });

  it("counts at most the CRD's 1000 attempts", () => {
    const attempts = [{ ...attempt(1, 500, "e"), number: 1500 }];
    const writes = planMirrorWrites(undefined, record({ phase: "FAILED", attempts }), "crm-uid", now);
    const status =
      writes[1]?.verb === "patchStatus" ? (writes[1].patch.status as { attempts: number }) : undefined;
    expect(status?.attempts).toBe(1000);
  });
});

describe("shouldMirror", () => {
  it.each([
    ["All", "QUEUED", false, true],
    ["FailedOnly", "QUEUED", false, false],
    ["FailedOnly", "SENT", false, false],
    ["FailedOnly", "FAILED", false, true],
    ["FailedOnly", "SENT", true, true],
    ["None", "FAILED", false, false],
    ["None", "SENT", true, true],
  ] as const)("%s, %s, exists=%s → %s", (mode, phase, exists, expected) => {
    expect(shouldMirror(mode, phase, exists)).toBe(expected);
  });
});

describe("labelValue", () => {
  it("keeps valid values and shortens others to a valid, stable one", () => {
    expect(labelValue("payment.received")).toBe("payment.received");
    const long = `a${"b".repeat(100)}`;
    expect(labelValue(long)).toMatch(/^ab{51}-[0-9a-f]{10}$/);
    expect(labelValue(long)).toBe(labelValue(long));
  });
});
