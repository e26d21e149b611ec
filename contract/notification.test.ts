import { describe, expect, it } from "vitest";
import { notificationPayload } from "./notification.ts";

describe("notificationPayload", () => {
  it("is one JSON object with the event's identity and the producer's data", () => {
    const body = notificationPayload({
      eventId: "evt-1",
      type: "payment.received",
      occurredAt: "2025-01-01T00:00:00.000Z",
      namespace: "team-a",
      webhook: "billing",
      dataJson: '{"paymentId":"p-1","amount":{"value":100}}',
    });
    expect(JSON.parse(body)).toEqual({
      id: "evt-1",
      type: "payment.received",
      timestamp: "2025-01-01T00:00:00.000Z",
      namespace: "team-a",
      webhook: "billing",
      data: { paymentId: "p-1", amount: { value: 100 } },
    });
  });

  it("escapes identifiers", () => {
    const body = notificationPayload({
      eventId: 'evt"1',
      type: "job.created",
      occurredAt: "t",
      namespace: "n",
      webhook: "w",
      dataJson: "{}",
    });
    expect(JSON.parse(body).id).toBe('evt"1');
  });
});
