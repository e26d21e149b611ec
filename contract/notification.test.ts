import { describe, expect, it } from "vitest";
import { notificationData, notificationPayload } from "./notification.ts";

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

describe("notificationData", () => {
  const notification = {
    eventId: "evt-1",
    type: "job.created",
    occurredAt: "2025-01-01T01:00:00+01:00",
    namespace: "team-a",
    webhook: "jobs",
  };

  it("gives back the data's bytes as they were spliced in", () => {
    const dataJson = '{ "b":1,  "a":"\\u00e9\\"}", "n":{"x":[1,{}]} }';
    const payload = notificationPayload({ ...notification, dataJson });
    expect(notificationData(notification, payload)).toBe(dataJson);
  });

  it("is undefined for a payload of another notification or shape", () => {
    const payload = notificationPayload({ ...notification, dataJson: "{}" });
    expect(notificationData({ ...notification, webhook: "other" }, payload)).toBeUndefined();
    expect(notificationData(notification, '{"id":"evt-1"}')).toBeUndefined();
    expect(notificationData(notification, payload.slice(0, -1))).toBeUndefined();
  });
});
