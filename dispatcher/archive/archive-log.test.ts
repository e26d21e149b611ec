import { describe, expect, it } from "vitest";
import { deliveryId } from "../../contract/delivery-id.ts";
import { notificationPayload } from "../../contract/notification.ts";
import { type DeliveryRecord, toDeliveryRecord, unpackDelivery } from "../../contract/records.ts";
import { eventOfDeliveries, restoredRecord } from "./archive-log.ts";

// An event's view rebuilt from its archived deliveries (GET /v1/events/{ns}/{id} once Redis has
// dropped the event record): the data comes back out of a delivery's body.

const at = "2026-11-30T10:00:00.000Z";

function delivery(webhook: string, payload: string): DeliveryRecord {
  return {
    id: deliveryId("ns", "evt-1", webhook),
    eventId: "evt-1",
    eventType: "job.created",
    namespace: "ns",
    webhook,
    webhookUid: "u",
    url: "https://example.com",
    payload,
    phase: "SENT",
    attempts: [],
    maxAttempts: 3,
    cycle: 1,
    cycleAttempts: 1,
    occurredAt: at,
    ingestedAt: at,
    createdAt: at,
    updatedAt: at,
    version: 1,
  };
}

/** The body webhook `hook` was sent for event `evt-1` carrying `dataJson`. */
function hookPayload(dataJson: string): string {
  return notificationPayload({
    eventId: "evt-1",
    type: "job.created",
    occurredAt: at,
    namespace: "ns",
    webhook: "hook",
    dataJson,
  });
}

describe("eventOfDeliveries", () => {
  it("takes the data's own bytes out of a notification body", () => {
    const dataJson = '{"b": 2, "a": [1,2]}';
    const payload = hookPayload(dataJson);
    const event = eventOfDeliveries("ns", "evt-1", [delivery("hook", payload)]);
    expect(event).toMatchObject({ id: "evt-1", type: "job.created", data: dataJson, routing: "routed" });
    expect(event?.deliveryIds).toEqual([deliveryId("ns", "evt-1", "hook")]);
  });

  it("parses a body of another shape (fields in another order) for its data instead of failing", () => {
    const payload = JSON.stringify({ data: { jobId: "j-1" }, type: "job.created", id: "evt-1" });
    expect(eventOfDeliveries("ns", "evt-1", [delivery("hook", payload)])?.data).toBe('{"jobId":"j-1"}');
  });

  it("refuses a body that is no notification", () => {
    expect(() => eventOfDeliveries("ns", "evt-1", [delivery("hook", "not json")])).toThrow(
      /not a notification/,
    );
  });
});

describe("restoredRecord", () => {
  it("brings an ordered webhook's delivery back ordered (a retry takes its turn in the queue), and an unordered one unordered", () => {
    const payload = hookPayload("{}");
    for (const ordered of [true, undefined]) {
      const record: DeliveryRecord = {
        ...delivery("hook", payload),
        phase: "FAILED",
        ...(ordered ? { ordered } : {}),
      };
      const view = unpackDelivery(restoredRecord({ record, retryTokens: ["t-0"] }));
      expect(view.header.ordered).toBe(ordered);
      expect(toDeliveryRecord(record.id, view, null)).toEqual({ ...record, lastRetryToken: "t-0" });
    }
  });
});
