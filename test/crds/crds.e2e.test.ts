import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { API_VERSION } from "../../operator/api/v1alpha1/index.ts";
import { createTestNamespace, kubectl } from "../env/kubectl.ts";
import { INVALID_OBJECTS, manifestOf } from "./invalid-objects.ts";

const repo = join(import.meta.dirname, "..", "..");
const CRD_NAMES = [
  "webhookintegrations.webhooks.dataforce.io",
  "webhooks.webhooks.dataforce.io",
  "webhookevents.webhooks.dataforce.io",
  "webhookreplays.webhooks.dataforce.io",
];

/** The samples, moved into `namespace` (they name `acme`). */
async function samplesIn(namespace: string): Promise<string> {
  const dir = join(repo, "crds", "samples");
  const docs: string[] = [];
  for (const file of (await readdir(dir)).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(dir, file), "utf8"))) {
      const object = doc.toJS() as { metadata: { namespace?: string } };
      object.metadata.namespace = namespace;
      docs.push(stringify(object));
    }
  }
  return docs.join("---\n");
}

async function getJson<T = Record<string, unknown>>(args: string[]): Promise<T> {
  return JSON.parse((await kubectl([...args, "-o", "json"])).stdout) as T;
}

/** Client-side `kubectl apply`, as a person types it; returns the result without throwing. */
function tryApply(object: unknown, namespace: string) {
  return kubectl(["apply", "-n", namespace, "-f", "-"], {
    input: JSON.stringify(object),
    allowFailure: true,
  });
}

/** A minimal valid Webhook named `jobs`. */
async function createJobsWebhook(namespace: string): Promise<void> {
  const webhook = {
    apiVersion: API_VERSION,
    kind: "Webhook",
    metadata: { name: "jobs" },
    spec: { event: "job.created", url: "https://example.com/h" },
  };
  const result = await tryApply(webhook, namespace);
  if (result.code !== 0) throw new Error(result.stderr);
}

beforeAll(async () => {
  await kubectl(["apply", "--server-side", "-f", join(repo, "crds")]);
  await kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    ...CRD_NAMES.map((n) => `crd/${n}`),
  ]);
});

describe("the CRDs", () => {
  it("are Established with short names and the dataforce category", async () => {
    for (const name of CRD_NAMES) {
      const crd = await getJson<{ status: { conditions: Array<{ type: string; status: string }> } }>([
        "get",
        "crd",
        name,
      ]);
      expect(crd.status.conditions).toContainEqual(
        expect.objectContaining({ type: "Established", status: "True" }),
      );
    }
    const { stdout } = await kubectl(["api-resources", "--api-group=webhooks.dataforce.io", "-o", "wide"]);
    expect(stdout).toMatch(/webhookintegrations\s+whi\s/);
    expect(stdout).toMatch(/webhooks\s+wh\s/);
    expect(stdout).toMatch(/webhookevents\s+whe,whevent\s/);
    expect(stdout).toMatch(/webhookreplays\s+whr\s/);
    expect(stdout.match(/\sdataforce$/gm)?.length).toBe(4); // the CATEGORIES column
  });

  it("accept the samples, which `kubectl get dataforce` then lists", async () => {
    const ns = await createTestNamespace("crd-samples");
    const { stdout } = await kubectl(["apply", "-f", "-"], { input: await samplesIn(ns.name) });
    expect(stdout).toContain("webhookintegration.webhooks.dataforce.io/default created");
    expect(stdout).toContain("webhook.webhooks.dataforce.io/crm-appointments created");
    expect(stdout).toContain("webhook.webhooks.dataforce.io/finance-large-payments created");
    expect(stdout).toContain("webhook.webhooks.dataforce.io/ledger-payments created");
    expect(stdout).toContain("webhookreplay.webhooks.dataforce.io/crm-outage-2026-11-29 created");
    expect(stdout).toContain("webhookevent.webhooks.dataforce.io/d-3f9c2a7b41e04c8d9a51b0c6e2f7a813 created");
    const listed = await kubectl(["get", "dataforce", "-n", ns.name, "-o", "name"]);
    expect(listed.stdout.trim().split("\n").sort()).toEqual([
      "webhook.webhooks.dataforce.io/crm-appointments",
      "webhook.webhooks.dataforce.io/finance-large-payments",
      "webhook.webhooks.dataforce.io/ledger-payments",
      "webhookevent.webhooks.dataforce.io/d-3f9c2a7b41e04c8d9a51b0c6e2f7a813",
      "webhookintegration.webhooks.dataforce.io/default",
      "webhookreplay.webhooks.dataforce.io/crm-outage-2026-11-29",
    ]);
    await ns.delete();
  });

  it("get their defaults from the API server", async () => {
    const ns = await createTestNamespace("crd-defaults");
    await tryApply(
      { apiVersion: API_VERSION, kind: "WebhookIntegration", metadata: { name: "default" }, spec: {} },
      ns.name,
    );
    await tryApply(
      {
        apiVersion: API_VERSION,
        kind: "Webhook",
        metadata: { name: "jobs" },
        spec: { event: "job.created", url: "https://example.com/h" },
      },
      ns.name,
    );
    const integration = await getJson<{ spec: unknown }>(["get", "whi", "default", "-n", ns.name]);
    expect(integration.spec).toEqual({
      enabled: false,
      delivery: {
        maxAttempts: 3,
        timeout: "15s",
        backoff: { initialDelay: "5s", maxDelay: "1h", multiplier: 6 },
        circuitBreaker: { consecutiveFailures: 5, cooldown: "30s", maxCooldown: "10m" },
        autoPause: { after: "120h" },
      },
      eventLog: { mirror: "All", retention: "168h", maxEvents: 1000 },
      destinationPolicy: { allowPlainHTTP: false },
      signatureScheme: "v1",
    });
    const webhook = await getJson<{ spec: { paused: boolean; ordering: string } }>([
      "get",
      "wh",
      "jobs",
      "-n",
      ns.name,
    ]);
    expect(webhook.spec.paused).toBe(false);
    expect(webhook.spec.ordering).toBe("Unordered");
    await ns.delete();
  });

  it("print useful columns in `kubectl get`", async () => {
    const ns = await createTestNamespace("crd-columns");
    await kubectl(["apply", "-f", "-"], { input: await samplesIn(ns.name) });
    const header = async (resource: string, wide = false) =>
      (await kubectl(["get", resource, "-n", ns.name, ...(wide ? ["-o", "wide"] : [])])).stdout
        .split("\n")[0]
        ?.split(/\s{2,}/)
        .map((s) => s.trim());
    expect(await header("webhookintegrations")).toEqual([
      "NAME",
      "ENABLED",
      "WEBHOOKS",
      "READY",
      "REASON",
      "AGE",
    ]);
    expect(await header("webhooks")).toEqual([
      "NAME",
      "EVENT",
      "URL",
      "READY",
      "REASON",
      "HEALTH",
      "LAST DELIVERY",
      "AGE",
    ]);
    expect(await header("webhooks", true)).toContain("PAUSED");
    expect(await header("webhooks", true)).toContain("FILTER");
    expect(await header("webhooks", true)).toContain("ORDERING");
    expect(await header("webhookevents")).toEqual(["NAME", "WEBHOOK", "EVENT", "PHASE", "ATTEMPTS", "AGE"]);
    const row = (await kubectl(["get", "wh", "crm-appointments", "-n", ns.name, "--no-headers"])).stdout;
    expect(row).toContain("appointment.completed");
    expect(row).toContain("https://crm.acme.example/hooks/dataforce");
    await ns.delete();
  });

  it("are documented by `kubectl explain`", async () => {
    const event = (await kubectl(["explain", "webhook.spec.event"])).stdout;
    expect(event).toContain("The business event this webhook subscribes to.");
    expect(event).toContain("payment.refunded");
    const mirror = (await kubectl(["explain", "webhookintegration.spec.eventLog.mirror"])).stdout;
    expect(mirror).toContain("FailedOnly");
    const phase = (await kubectl(["explain", "webhookevent.status.phase"])).stdout;
    expect(phase).toContain("QUEUED (pending, attempts left)");
  });
});

describe("the API server rejects invalid objects with a clear message", () => {
  let plainNs: string;
  let httpsOnlyNs: string;

  beforeAll(async () => {
    plainNs = (await createTestNamespace("crd-invalid")).name;
    httpsOnlyNs = (await createTestNamespace("crd-https-only")).name;
    await tryApply(
      {
        apiVersion: API_VERSION,
        kind: "WebhookIntegration",
        metadata: { name: "default" },
        spec: { enabled: true },
      },
      httpsOnlyNs,
    );
  });

  it("has at least 12 cases", () => expect(INVALID_OBJECTS.length).toBeGreaterThanOrEqual(12));

  it.each(INVALID_OBJECTS.map((c) => [c.name, c] as const))("%s", async (_, testCase) => {
    const ns = testCase.needsIntegration ? httpsOnlyNs : plainNs;
    // An admission policy starts enforcing a moment after it (or its parameter) appears.
    const deadline = Date.now() + (testCase.needsIntegration ? 20_000 : 0);
    let result = await tryApply(manifestOf(testCase, ns), ns);
    while (result.code === 0 && Date.now() < deadline) {
      await kubectl(["delete", testCase.kind.toLowerCase(), "invalid", "-n", ns, "--ignore-not-found"]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      result = await tryApply(manifestOf(testCase, ns), ns);
    }
    expect(result.code, `accepted: ${result.stdout}`).not.toBe(0);
    expect(result.stderr).toContain(testCase.message);
  });

  it("accepts plain http once the integration allows it", async () => {
    const ns = (await createTestNamespace("crd-http-allowed")).name;
    await tryApply(
      {
        apiVersion: API_VERSION,
        kind: "WebhookIntegration",
        metadata: { name: "default" },
        spec: { enabled: true, destinationPolicy: { allowPlainHTTP: true } },
      },
      ns,
    );
    const webhook = {
      apiVersion: API_VERSION,
      kind: "Webhook",
      metadata: { name: "local" },
      spec: { event: "job.created", url: "http://127.0.0.1:8080/h" },
    };
    const result = await tryApply(webhook, ns);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
  });
});

describe("the status subresource", () => {
  it("keeps spec and status apart, and only spec changes bump the generation", async () => {
    const ns = (await createTestNamespace("crd-status")).name;
    await createJobsWebhook(ns);
    const condition = {
      type: "Ready",
      status: "False",
      reason: "IntegrationMissing",
      message: "no WebhookIntegration in this namespace",
      lastTransitionTime: "2026-11-27T10:00:00Z",
      observedGeneration: 1,
    };
    await kubectl([
      "patch",
      "webhook",
      "jobs",
      "-n",
      ns,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { observedGeneration: 1, conditions: [condition] }, spec: { paused: true } }),
    ]);
    type Obj = {
      metadata: { generation: number };
      spec: { paused: boolean };
      status?: { conditions?: unknown[] };
    };
    let webhook = await getJson<Obj>(["get", "webhook", "jobs", "-n", ns]);
    expect(webhook.metadata.generation).toBe(1);
    expect(webhook.spec.paused).toBe(false); // a status write cannot change spec
    expect(webhook.status?.conditions).toEqual([condition]);

    await kubectl([
      "patch",
      "webhook",
      "jobs",
      "-n",
      ns,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { paused: true }, status: { conditions: [] } }),
    ]);
    webhook = await getJson<Obj>(["get", "webhook", "jobs", "-n", ns]);
    expect(webhook.metadata.generation).toBe(2);
    expect(webhook.spec.paused).toBe(true);
    expect(webhook.status?.conditions).toEqual([condition]); // a spec write cannot change status
  });

  it("validates conditions like Kubernetes does", async () => {
    const ns = (await createTestNamespace("crd-conditions")).name;
    await createJobsWebhook(ns);
    const bad = {
      type: "Ready",
      status: "Maybe",
      reason: "not camel case",
      message: "",
      lastTransitionTime: "2026-11-27T10:00:00Z",
    };
    const result = await kubectl(
      [
        "patch",
        "webhook",
        "jobs",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status: { conditions: [bad] } }),
      ],
      { allowFailure: true },
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('Unsupported value: "Maybe"');
    expect(result.stderr).toContain('status.conditions[0].reason: Invalid value: "not camel case"');
  });

  it("makes a WebhookEvent's spec immutable", async () => {
    const ns = (await createTestNamespace("crd-immutable")).name;
    await kubectl(["apply", "-f", "-"], { input: await samplesIn(ns) });
    const result = await kubectl(
      [
        "patch",
        "webhookevent",
        "d-3f9c2a7b41e04c8d9a51b0c6e2f7a813",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"url":"https://evil.example/"}}',
      ],
      { allowFailure: true },
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("spec is immutable");
  });
});
