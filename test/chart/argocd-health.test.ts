// The Argo CD health check (charts/dataforce-webhooks/files/argocd-health.lua) on objects shaped
// like the operator's status, run by a real Lua 5.1 (Debian's lua5.1) as Argo CD runs it
// (argocd-health-harness.lua); test/e2e/status-model.e2e.test.ts runs it on live objects beside kstatus.
import { describe, expect, it } from "vitest";
import { argoHealth as health, runHealthScriptText } from "./argocd-lua.ts";

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

  it("names the generation it waits for as Argo CD prints it (a Lua 5.1 number: 2, not 2.0)", () => {
    const stale = webhook({ observedGeneration: 1, conditions: [ready("True", "Active")] });
    expect(health(stale)).toEqual({
      status: "Progressing",
      message: "Waiting for the operator to observe generation 2",
    });
  });

  it("passes any message through unchanged", () => {
    const message = 'endpoint said "no"\n\tline 2 \\ ünïcødé ✓';
    const stalled = webhook({
      observedGeneration: 2,
      conditions: [ready("False", "Gone"), condition("Stalled", "True", "Gone", message)],
    });
    expect(health(stalled)).toEqual({ status: "Degraded", message });
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

describe("the Lua harness runs a health script as Argo CD does", () => {
  const obj = { metadata: { name: "x", generation: 3, labels: { a: "b" } }, spec: { list: [10, 20] } };

  it("on Lua 5.1 (gopher-lua's language), numbers without an integer type", () => {
    const script = `return { status = "Healthy", message = _VERSION .. " " .. tostring(3 / 2) .. " " .. tostring(obj.metadata.generation) }`;
    expect(runHealthScriptText(script, obj)).toEqual({ status: "Healthy", message: "Lua 5.1 1.5 3" });
  });

  it("with the object in obj: maps by key, arrays from 1", () => {
    const script = `return { status = "Healthy", message = obj.metadata.labels.a .. #obj.spec.list .. obj.spec.list[2] }`;
    expect(runHealthScriptText(script, obj).message).toBe("b220");
  });

  it.each([
    [
      "the string library",
      `return { status = "Healthy", message = string.format("%d", 1) }`,
      /global 'string'/,
    ],
    [
      "string methods",
      `local s = "x" return { status = "Healthy", message = s:upper() }`,
      /attempt to index local 's'/,
    ],
    [
      "the math library",
      `return { status = "Healthy", message = tostring(math.floor(1.5)) }`,
      /global 'math'/,
    ],
    ["io", `io.write("x") return { status = "Healthy" }`, /global 'io'/],
    ["os beyond time and date", `os.exit(0) return { status = "Healthy" }`, /field 'exit'/],
  ])("without %s (Argo CD opens base, package, table and a safe os only)", (_, script, error) => {
    expect(() => runHealthScriptText(script, obj)).toThrow(error);
  });

  it("with table and os.time", () => {
    const script = `local t = {} table.insert(t, "a") return { status = "Healthy", message = t[1] .. type(os.time()) }`;
    expect(runHealthScriptText(script, obj).message).toBe("anumber");
  });

  it("turns a status outside Argo CD's set into Unknown, and refuses a result that is not a table", () => {
    expect(runHealthScriptText(`return { status = "Fine" }`, obj)).toEqual({
      status: "Unknown",
      message: "Lua returned an invalid health status",
    });
    expect(() => runHealthScriptText(`return "Healthy"`, obj)).toThrow(/expect table output/);
    expect(() => runHealthScriptText(`return { status = 1 }`, obj)).toThrow(/not a string/);
  });
});
