import { describe, expect, it } from "vitest";
import { DELIVERY_ID_PATTERN, deliveryId } from "./delivery-id.ts";

describe("deliveryId", () => {
  it("is deterministic per (namespace, event, webhook) and distinct otherwise", () => {
    const id = deliveryId("team-a", "evt-1", "orders");
    expect(deliveryId("team-a", "evt-1", "orders")).toBe(id);
    expect(deliveryId("team-b", "evt-1", "orders")).not.toBe(id);
    expect(deliveryId("team-a", "evt-2", "orders")).not.toBe(id);
    expect(deliveryId("team-a", "evt-1", "orders-2")).not.toBe(id);
    expect(id).toMatch(/^orders-[a-z2-7]{20}$/);
  });

  it.each(["orders", "a", "My.Webhook.With.Dots", "x".repeat(253), "-leading-and-trailing-", "..."])(
    "is a valid Kubernetes name and label value for webhook %s",
    (webhook) => {
      const id = deliveryId("ns", "evt:1/ünïcode", webhook);
      expect(id).toMatch(DELIVERY_ID_PATTERN);
      expect(id.length).toBeLessThanOrEqual(63);
    },
  );
});
