import { describe, expect, it } from "vitest";
import { transitionEvent } from "./integration.ts";
import { LastDeliveries, readyEvent } from "./webhook.ts";

describe("integration Events", () => {
  const active = { status: "True", reason: "Active", message: "delivering" } as const;
  const disabled = {
    status: "True",
    reason: "IntegrationDisabled",
    message: "spec.enabled is false",
  } as const;

  it("records enabling and disabling, once per transition", () => {
    expect(transitionEvent(undefined, active, 2)).toMatchObject({
      reason: "IntegrationEnabled",
      note: "delivering to 2 webhooks",
    });
    expect(transitionEvent(active, disabled, 0)).toMatchObject({
      type: "Normal",
      reason: "IntegrationDisabled",
    });
    expect(transitionEvent(disabled, active, 1)).toMatchObject({
      reason: "IntegrationEnabled",
      note: "delivering to 1 webhook",
    });
    expect(transitionEvent(active, active, 3)).toBeUndefined();
  });

  it("warns about other reasons and stays quiet while Unknown", () => {
    const missing = {
      status: "False",
      reason: "SecretNotFound",
      message: "signing secret: Secret x not found",
    } as const;
    expect(transitionEvent(active, missing, 0)).toMatchObject({ type: "Warning", reason: "SecretNotFound" });
    expect(
      transitionEvent(undefined, { status: "Unknown", reason: "SigningSecretPending", message: "" }, 0),
    ).toBeUndefined();
  });
});

describe("webhook Events", () => {
  it("WebhookReady / WebhookNotDelivering / WebhookNotReady on changes of status or reason", () => {
    const active = { status: "True", reason: "Active", message: "delivering job.created events" } as const;
    expect(readyEvent(undefined, active)).toMatchObject({ type: "Normal", reason: "WebhookReady" });
    expect(readyEvent(active, active)).toBeUndefined();
    const paused = {
      status: "True",
      reason: "Paused",
      message: "not delivering: spec.paused is true",
    } as const;
    expect(readyEvent(active, paused)).toMatchObject({
      type: "Normal",
      reason: "WebhookNotDelivering",
      note: "Paused: not delivering: spec.paused is true",
    });
    expect(readyEvent(paused, { ...paused, reason: "IntegrationDisabled" })).toMatchObject({
      type: "Normal",
      reason: "WebhookNotDelivering",
    });
    expect(readyEvent(paused, active)).toMatchObject({ type: "Normal", reason: "WebhookReady" });
    expect(readyEvent(active, { status: "False", reason: "EndpointGone", message: "410" })).toMatchObject({
      type: "Warning",
    });
  });
});

describe("LastDeliveries", () => {
  const base = { namespace: "ns", webhook: "hook", eventId: "e", deliveryId: "d1" };

  it("keeps the latest delivery per webhook and reports when it changed", () => {
    const last = new LastDeliveries();
    expect(last.observe({ ...base, phase: "QUEUED", time: "2026-01-01T00:00:01.000Z" })).toBe("ns/hook");
    expect(last.observe({ ...base, phase: "QUEUED", time: "2026-01-01T00:00:01.000Z" })).toBeUndefined();
    expect(last.observe({ ...base, phase: "SENT", time: "2026-01-01T00:00:02.000Z", statusCode: 200 })).toBe(
      "ns/hook",
    );
    // An older state arriving late does not win.
    expect(
      last.observe({ ...base, deliveryId: "d0", phase: "FAILED", time: "2026-01-01T00:00:00.000Z" }),
    ).toBeUndefined();
    expect(last.get("ns/hook")).toEqual({
      deliveryId: "d1",
      eventId: "e",
      phase: "SENT",
      time: "2026-01-01T00:00:02.000Z",
      statusCode: 200,
    });
  });

  it("remembers a 410 Gone for the URL it was said for until cleared", () => {
    const last = new LastDeliveries();
    last.observe({
      ...base,
      phase: "FAILED",
      time: "2026-01-01T00:00:01.000Z",
      failureReason: "endpoint-gone",
      url: "https://a/",
    });
    expect(last.isGone("ns/hook", "https://a/")).toBe(true);
    expect(last.isGone("ns/hook", "https://b/")).toBe(false);
    last.clearGone("ns/hook");
    expect(last.isGone("ns/hook", "https://a/")).toBe(false);
  });
});
