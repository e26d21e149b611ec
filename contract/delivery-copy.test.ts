import { describe, expect, it } from "vitest";
import { copyDelivery } from "./delivery-copy.ts";
import { copyDeliveryId } from "./delivery-id.ts";
import { notificationPayload } from "./notification.ts";
import { type StoredDelivery, unpackDelivery } from "./records.ts";

// A delivery's copy for another webhook (a replay's targetWebhook), for each way a record holds
// its event's data: from the event record, its own copy of the data, or (format 1) its whole body.

const CREATED = Date.parse("2026-01-01T10:00:00.000Z");
const target = {
  name: "spare",
  uid: "spare-uid",
  url: "https://spare.example/h",
  ordered: false,
  maxAttempts: 4,
};

function original(overrides: Partial<StoredDelivery> = {}): StoredDelivery {
  return {
    format: "d2",
    phase: "FAILED",
    version: 3,
    attemptCount: 3,
    maxAttempts: 3,
    cycle: 1,
    cycleAttempts: 3,
    createdAt: CREATED,
    updatedAt: CREATED,
    eventId: "evt-1",
    namespace: "team-a",
    webhook: "orders",
    webhookUid: "orders-uid",
    eventType: "job.created",
    url: "https://orders.example/h",
    retryTokens: ["t0"],
    failureReason: "attempts-exhausted",
    ...overrides,
  };
}

describe("copyDelivery", () => {
  it("makes a QUEUED delivery of the same event for the target, taking the data where the original does", () => {
    const copy = copyDelivery(
      "orders-aaaa",
      { header: original(), attempts: [] },
      target,
      "replay:u:1",
      CREATED + 5,
    );
    expect(copy).toMatchObject({
      id: copyDeliveryId("team-a", "orders-aaaa", "spare", "replay:u:1"),
      ordered: false,
    });
    const { header, attempts } = unpackDelivery(copy.record);
    expect(attempts).toEqual([]);
    expect(header).toEqual({
      format: "d2",
      phase: "QUEUED",
      version: 0,
      attemptCount: 0,
      maxAttempts: 4,
      cycle: 1,
      cycleAttempts: 0,
      createdAt: CREATED + 5,
      updatedAt: CREATED + 5,
      eventId: "evt-1",
      namespace: "team-a",
      webhook: "spare",
      webhookUid: "spare-uid",
      eventType: "job.created",
      url: "https://spare.example/h",
      retryTokens: ["replay:u:1"],
    });
  });

  it("keeps the original's own copy of the data, and rebuilds a format 1 body for the target", () => {
    const withData = original({
      ingestedAt: CREATED,
      occurredAt: "2026-01-01T09:59:00.000Z",
      data: '{"a":1}',
    });
    const copied = unpackDelivery(
      copyDelivery("x", { header: withData, attempts: [] }, target, "t", CREATED).record,
    );
    expect(copied.header).toMatchObject({
      ingestedAt: CREATED,
      occurredAt: "2026-01-01T09:59:00.000Z",
      data: '{"a":1}',
    });

    const body = notificationPayload({
      eventId: "evt-1",
      type: "job.created",
      occurredAt: "2026-01-01T09:59:00.000Z",
      namespace: "team-a",
      webhook: "orders",
      dataJson: '{"a":[1,2]}',
    });
    const legacy = original({ ingestedAt: CREATED, payload: body });
    const rebuilt = unpackDelivery(
      copyDelivery("y", { header: legacy, attempts: [] }, target, "t", CREATED).record,
    );
    expect(JSON.parse(rebuilt.header.payload ?? "")).toEqual({ ...JSON.parse(body), webhook: "spare" });
  });

  it("marks a copy for an ordered target", () => {
    const copy = copyDelivery(
      "z",
      { header: original(), attempts: [] },
      { ...target, ordered: true },
      "t",
      CREATED,
    );
    expect(copy.ordered).toBe(true);
    expect(unpackDelivery(copy.record).header.ordered).toBe(true);
  });
});
