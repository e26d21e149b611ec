import { describe, expect, it } from "vitest";
import { sentHeaders } from "./sent-headers.ts";

describe("sentHeaders", () => {
  const attempt = { number: 2, startedAt: "2025-01-01T10:00:00.750Z", durationMs: 3 };

  it("shows the fixed headers' values, the latest attempt's timestamp, and no secret", () => {
    const headers = sentHeaders({ id: "d-1", attempts: [attempt] }, "Dataforce-Webhooks/1.0.0", [
      "authorization",
    ]);
    expect(headers.map((h) => h.name)).toEqual([
      "authorization",
      "content-type",
      "user-agent",
      "webhook-id",
      "webhook-timestamp",
      "webhook-signature",
    ]);
    expect(headers.find((h) => h.name === "webhook-timestamp")?.value).toBe("1735725600");
    expect(headers.find((h) => h.name === "webhook-id")?.value).toBe("d-1");
    expect(headers.find((h) => h.name === "authorization")?.value).toBeUndefined();
    expect(headers.find((h) => h.name === "webhook-signature")?.value).toBeUndefined();
  });

  it("has no timestamp value before the first attempt", () => {
    const headers = sentHeaders({ id: "d-1", attempts: [] }, "ua", []);
    expect(headers.find((h) => h.name === "webhook-timestamp")?.value).toBeUndefined();
  });
});
