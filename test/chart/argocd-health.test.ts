// The Argo CD health check (charts/dataforce-webhooks/files/argocd-health.lua) on objects shaped
// like the operator's status; test/e2e/status-model.e2e.test.ts runs it on live objects beside kstatus.
import { describe, expect, it } from "vitest";
import { argoHealth as health } from "./argocd-lua.ts";

const ready = (status: string, reason: string, message = "") => ({
  type: "Ready",
  status,
  reason,
  message,
  observedGeneration: 2,
  lastTransitionTime: "2026-01-01T00:00:00Z",
});
const webhook = (status?: Record<string, unknown>, generation = 2) => ({
  apiVersion: "webhooks.dataforce.io/v1alpha1",
  kind: "Webhook",
  metadata: { name: "crm", namespace: "acme", generation },
  spec: { event: "job.created", url: "https://crm.example/hook" },
  ...(status ? { status } : {}),
});

const condition = (type: string, status: string, reason: string, message = "") => ({
  ...ready(status, reason, message),
  type,
});

describe("the Argo CD health check", () => {
  it.each([
    ["no status yet", webhook(), "Progressing"],
    [
      "not yet seen by the operator (the CRD's default status)",
      webhook({ observedGeneration: 0 }),
      "Progressing",
    ],
    [
      "spec not yet observed",
      webhook({ observedGeneration: 1, conditions: [ready("True", "Active")] }),
      "Progressing",
    ],
    ["no Ready condition yet", webhook({ observedGeneration: 2, conditions: [] }), "Progressing"],
    [
      "Ready",
      webhook({ observedGeneration: 2, conditions: [ready("True", "Active", "delivering")] }),
      "Healthy",
    ],
    // states the user asked for: Healthy, as kstatus says Current (Suspended would hold a sync wave)
    ["paused", webhook({ observedGeneration: 2, conditions: [ready("True", "Paused")] }), "Healthy"],
    [
      "integration disabled",
      webhook({ observedGeneration: 2, conditions: [ready("True", "IntegrationDisabled")] }),
      "Healthy",
    ],
    [
      "waiting for a Secret",
      webhook({
        observedGeneration: 2,
        conditions: [
          ready("False", "SecretNotFound", "secret crm-auth not found"),
          condition("Reconciling", "True", "SecretNotFound", "secret crm-auth not found"),
        ],
      }),
      "Progressing",
    ],
    [
      "Ready Unknown",
      webhook({ observedGeneration: 2, conditions: [ready("Unknown", "SigningSecretPending")] }),
      "Progressing",
    ],
    [
      "Ready False without Stalled (kstatus: InProgress)",
      webhook({ observedGeneration: 2, conditions: [ready("False", "SecretNotFound")] }),
      "Progressing",
    ],
    [
      "stalled",
      webhook({
        observedGeneration: 2,
        conditions: [ready("False", "InvalidSpec"), condition("Stalled", "True", "InvalidSpec", "bad")],
      }),
      "Degraded",
    ],
    [
      "Stalled False is no failure",
      webhook({
        observedGeneration: 2,
        conditions: [ready("True", "Active"), condition("Stalled", "False", "Fixed")],
      }),
      "Healthy",
    ],
    [
      "an integration that is Ready",
      {
        ...webhook({ observedGeneration: 2, conditions: [ready("True", "Active")] }),
        kind: "WebhookIntegration",
      },
      "Healthy",
    ],
  ])("%s → %s", (_, obj, expected) => {
    expect(health(obj).status).toBe(expected);
  });

  it("passes the deciding condition's message on, or its reason", () => {
    const stalled = webhook({
      observedGeneration: 2,
      conditions: [
        ready("False", "SecretNotFound", "secret crm-auth not found"),
        condition("Stalled", "True", "SecretNotFound", "secret crm-auth not found (still so after 2m)"),
      ],
    });
    expect(health(stalled)).toEqual({
      status: "Degraded",
      message: "secret crm-auth not found (still so after 2m)",
    });
    const paused = webhook({ observedGeneration: 2, conditions: [ready("True", "Paused")] });
    expect(health(paused)).toEqual({ status: "Healthy", message: "Paused" });
  });

  const event = (phase: string, conditions: unknown[]) => ({
    kind: "WebhookEvent",
    metadata: { name: "d-1", generation: 1 },
    status: { observedGeneration: 1, phase, attempts: 3, conditions },
  });
  it.each([
    ["QUEUED", [ready("False", "Queued"), condition("Reconciling", "True", "Queued")], "Progressing"],
    ["SENT", [ready("True", "Sent")], "Healthy"],
    ["FAILED", [ready("False", "Failed"), condition("Stalled", "True", "Failed")], "Degraded"],
  ])("a %s WebhookEvent is %s", (phase, conditions, expected) => {
    expect(health(event(phase, conditions)).status).toBe(expected);
  });
});
