// The product journey end to end: YAML in, signed notification out, WebhookEvent SENT;
// the integration toggle; editing and deleting a webhook.
import { Webhook as StandardWebhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { API_VERSION, SECRET_USAGE_LABEL, SECRET_USAGE_VALUE } from "../../operator/api/v1alpha1/index.ts";
import { applyYaml, kubectl } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { verifiesV1a } from "../support/verify-v1a.ts";
import { type E2eWorld, type OperatorProcess, setupWorld } from "./harness.ts";
import {
  eventually,
  getIntegration,
  getJson,
  getWebhook,
  integrationYaml,
  kubeEvents,
  listEvents,
  ready,
  routingLive,
  webhookYaml,
} from "./k8s.ts";

let world: E2eWorld;
let receiver: Receiver;
let operator: OperatorProcess;

beforeAll(async () => {
  world = await setupWorld("journey", [
    "journey",
    "toggle",
    "edit",
    "gone",
    "secrets",
    "legacy",
    "tokens",
    "ed25519",
  ]);
  receiver = await startReceiver();
  operator = await world.startOperator("op-journey");
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

describe("the product journey", () => {
  it("apply an integration and a webhook, publish appointment.completed: a verifiable signed notification, and the WebhookEvent SENT with 1 attempt", async () => {
    const ns = world.namespaces.journey!;
    const url = receiver.url("/journey/crm");
    await applyYaml(`${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "appointment.completed", url)}`);

    const webhook = await eventually(async () => {
      const webhook = await getWebhook(ns, "crm");
      expect(ready(webhook)).toMatchObject({ status: "True", reason: "Active", observedGeneration: 1 });
      expect(webhook.status?.observedGeneration).toBe(1);
      return webhook;
    });
    const integration = await eventually(async () => {
      const integration = await getIntegration(ns);
      expect(ready(integration)).toMatchObject({ status: "True", reason: "Active" });
      expect(integration.status).toMatchObject({
        activeWebhooks: 1,
        signingSecretName: "webhook-signing-secret",
      });
      return integration;
    });
    // The generated signing secret is owned by the integration.
    const secret = await getJson<{
      data: Record<string, string>;
      metadata: { ownerReferences: Array<{ kind: string; uid: string }> };
    }>(["get", "secret", "webhook-signing-secret", "-n", ns]);
    expect(secret.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "WebhookIntegration", uid: integration.metadata.uid }),
    ]);
    const signingSecret = Buffer.from(secret.data.secret!, "base64").toString("utf8");
    expect(signingSecret).toMatch(/^whsec_/);

    await routingLive(world, ns, (r) => r?.webhooks.some((w) => w.name === "crm") ?? false);
    await world.dispatcher.publish({
      type: "appointment.completed",
      namespace: ns,
      id: "apt-1001-completed",
      data: { appointmentId: "apt_1001", status: "completed" },
    });

    const [request] = await receiver.waitForRequests(1, "/journey/crm");
    const verified = new StandardWebhook(signingSecret).verify(request!.body, {
      "webhook-id": String(request!.headers["webhook-id"]),
      "webhook-timestamp": String(request!.headers["webhook-timestamp"]),
      "webhook-signature": String(request!.headers["webhook-signature"]),
    }) as { type: string; data: { appointmentId: string } };
    expect(verified.type).toBe("appointment.completed");
    expect(verified.data.appointmentId).toBe("apt_1001");

    const deliveryId = String(request!.headers["webhook-id"]);
    const event = await eventually(async () => {
      const [event] = await listEvents(ns);
      expect(event?.status).toMatchObject({ phase: "SENT", attempts: 1 });
      return event!;
    });
    expect(event.metadata.name).toBe(deliveryId);
    expect(event.metadata.labels).toEqual({
      "webhooks.dataforce.io/webhook": "crm",
      "webhooks.dataforce.io/event-type": "appointment.completed",
      "webhooks.dataforce.io/phase": "SENT",
    });
    expect(event.metadata.ownerReferences).toEqual([
      expect.objectContaining({
        apiVersion: API_VERSION,
        kind: "Webhook",
        name: "crm",
        uid: webhook.metadata.uid,
      }),
    ]);
    expect(event.spec).toMatchObject({
      deliveryId,
      eventId: "apt-1001-completed",
      eventType: "appointment.completed",
      webhook: "crm",
      url,
      payload: request!.body,
    });
    expect(event.status?.attemptHistory).toEqual([expect.objectContaining({ number: 1, statusCode: 200 })]);
    expect(ready(event)).toMatchObject({ status: "True", reason: "Sent" });

    // What a person sees.
    const table = (await kubectl(["get", "webhookevents", "-n", ns])).stdout;
    expect(table).toMatch(new RegExp(`${deliveryId}\\s+crm\\s+appointment.completed\\s+SENT\\s+1\\s`));
    const sent = (
      await kubectl([
        "get",
        "webhookevents",
        "-n",
        ns,
        "-l",
        "webhooks.dataforce.io/phase=SENT",
        "-o",
        "name",
      ])
    ).stdout;
    expect(sent.trim()).toBe(`webhookevent.webhooks.dataforce.io/${deliveryId}`);
    // The operator's own view: probes and the metrics dashboards know.
    const base = `http://127.0.0.1:${operator.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await operator.metrics();
    for (const name of [
      'controller_runtime_reconcile_total{controller="webhookintegration",result="success"}',
      'controller_runtime_reconcile_errors_total{controller="webhook"}',
      'controller_runtime_reconcile_time_seconds_bucket{le="0.005",controller="webhookevent_retry"}',
      'workqueue_depth{name="webhookevent_mirror"}',
      "dataforce_operator_mirror_lag_seconds",
      'dataforce_operator_api_writes_total{resource="webhookevents",verb="create"}',
    ]) {
      expect(metrics).toContain(name);
    }
    await eventually(async () => {
      expect((await getWebhook(ns, "crm")).status?.lastDelivery).toMatchObject({
        deliveryId,
        phase: "SENT",
        statusCode: 200,
      });
    });
  });
});

describe("the integration toggle", () => {
  it("disabled: no delivery and Ready=True/IntegrationDisabled (switched off on purpose); enabled: later events deliver", async () => {
    const ns = world.namespaces.toggle!;
    const url = receiver.url("/toggle/jobs");
    await applyYaml(
      `${integrationYaml(ns, { enabled: false })}---\n${webhookYaml(ns, "jobs", "job.created", url)}`,
    );

    await eventually(async () => {
      expect(ready(await getWebhook(ns, "jobs"))).toMatchObject({
        status: "True",
        reason: "IntegrationDisabled",
      });
      const integration = await getIntegration(ns);
      expect(ready(integration)).toMatchObject({ status: "True", reason: "IntegrationDisabled" });
      expect(integration.status?.activeWebhooks).toBe(0);
    });
    await routingLive(world, ns, (r) => r?.enabled === false);
    await world.dispatcher.publish({
      type: "job.created",
      namespace: ns,
      id: "job-1",
      data: { jobId: "job_1" },
    });

    await applyYaml(integrationYaml(ns, { enabled: true }));
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "jobs"))).toMatchObject({ status: "True", reason: "Active" });
    });
    await routingLive(world, ns, (r) => r?.enabled === true);
    await world.dispatcher.publish({
      type: "job.created",
      namespace: ns,
      id: "job-2",
      data: { jobId: "job_2" },
    });

    const [delivered] = await receiver.waitForRequests(1, "/toggle/jobs");
    expect(JSON.parse(delivered!.body)).toMatchObject({ data: { jobId: "job_2" } });
    await eventually(async () => expect(await listEvents(ns)).toHaveLength(1));
    expect(receiver.requests("/toggle/jobs")).toHaveLength(1); // job-1 was never delivered

    const reasons = (await kubeEvents(ns)).map((e) => `${e.involvedObject.kind}/${e.reason}`);
    expect(reasons).toEqual(
      expect.arrayContaining([
        "WebhookIntegration/IntegrationDisabled",
        "WebhookIntegration/IntegrationEnabled",
        "Webhook/WebhookNotDelivering",
        "Webhook/WebhookReady",
      ]),
    );
  });
});

describe("editing and deleting a webhook", () => {
  it("a new URL or event takes effect for the next event; deleting the webhook stops deliveries", async () => {
    const ns = world.namespaces.edit!;
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "pay", "payment.received", receiver.url("/edit/a"))}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.some((w) => w.url.endsWith("/edit/a")) ?? false);
    await world.dispatcher.publish({
      type: "payment.received",
      namespace: ns,
      id: "pay-1",
      data: { paymentId: "p1" },
    });
    await receiver.waitForRequests(1, "/edit/a");

    // New URL.
    const changed = performance.now();
    await applyYaml(webhookYaml(ns, "pay", "payment.received", receiver.url("/edit/b")));
    await routingLive(world, ns, (r) => r?.webhooks.some((w) => w.url.endsWith("/edit/b")) ?? false);
    const reachedMs = performance.now() - changed;
    await world.dispatcher.publish({
      type: "payment.received",
      namespace: ns,
      id: "pay-2",
      data: { paymentId: "p2" },
    });
    await receiver.waitForRequests(1, "/edit/b");
    expect(reachedMs).toBeLessThan(3_000);
    await eventually(async () => {
      expect((await getWebhook(ns, "pay")).status?.observedGeneration).toBe(2);
    });

    // New event type: the old one no longer delivers, the new one does.
    await applyYaml(webhookYaml(ns, "pay", "payment.refunded", receiver.url("/edit/b")));
    await routingLive(world, ns, (r) => r?.webhooks.some((w) => w.event === "payment.refunded") ?? false);
    await world.dispatcher.publish({
      type: "payment.received",
      namespace: ns,
      id: "pay-3",
      data: { paymentId: "p3" },
    });
    await world.dispatcher.publish({
      type: "payment.refunded",
      namespace: ns,
      id: "ref-1",
      data: { paymentId: "p3" },
    });
    const [, refund] = await receiver.waitForRequests(2, "/edit/b");
    expect(JSON.parse(refund!.body)).toMatchObject({ type: "payment.refunded" });

    // Deleted: nothing more is delivered; the integration counts no webhook.
    await kubectl(["delete", "webhook", "pay", "-n", ns]);
    await routingLive(world, ns, (r) => r?.webhooks.length === 0);
    await eventually(async () => expect((await getIntegration(ns)).status?.activeWebhooks).toBe(0));
    await world.dispatcher.publish({
      type: "payment.refunded",
      namespace: ns,
      id: "ref-2",
      data: { paymentId: "p4" },
    });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(receiver.requests("/edit/b")).toHaveLength(2);
    expect(receiver.requests("/edit/a")).toHaveLength(1);
  });
});

describe("a receiver that answers 410 Gone", () => {
  it("fails that delivery at once and marks the webhook Ready=False/EndpointGone, out of the routing until its spec changes", async () => {
    const ns = world.namespaces.gone!;
    receiver.on("/gone/old", { kind: "respond", status: 410, body: "this endpoint was removed" });
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "legacy", "job.created", receiver.url("/gone/old"))}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    await world.dispatcher.publish({
      type: "job.created",
      namespace: ns,
      id: "job-1",
      data: { jobId: "j1" },
    });

    await eventually(async () => {
      const [event] = await listEvents(ns, "webhooks.dataforce.io/phase=FAILED");
      expect(event?.status?.attempts).toBe(1);
      expect(ready(event!)?.message).toMatch(/^endpoint-gone/);
    });
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "legacy"))).toMatchObject({
        status: "False",
        reason: "EndpointGone",
      });
    });
    await routingLive(world, ns, (r) => r?.webhooks.length === 0);
    await eventually(async () => {
      const warning = (await kubeEvents(ns)).find((e) => e.reason === "WebhookNotReady");
      expect(warning?.message).toMatch(/^EndpointGone/);
    });

    // The team moves the receiver and updates the webhook: it delivers again.
    await applyYaml(webhookYaml(ns, "legacy", "job.created", receiver.url("/gone/new")));
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "legacy"))).toMatchObject({ status: "True", reason: "Active" });
    });
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    await world.dispatcher.publish({
      type: "job.created",
      namespace: ns,
      id: "job-2",
      data: { jobId: "j2" },
    });
    await receiver.waitForRequests(1, "/gone/new");
    expect(receiver.requests("/gone/old")).toHaveLength(1);
  });
});

describe("Secrets", () => {
  it("a referenced signing secret and a header from a Secret: missing → SecretNotFound; created or changed → in the routing within about a second", async () => {
    const ns = world.namespaces.secrets!;
    const first = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const second = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const secretYaml = (name: string, data: Record<string, string>, consent = true) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name,
          namespace: ns,
          ...(consent ? { labels: { [SECRET_USAGE_LABEL]: SECRET_USAGE_VALUE } } : {}),
        },
        stringData: data,
      });
    const integration = integrationYaml(ns).replace(
      "spec:\n",
      "spec:\n  signingSecretRef:\n    name: team-signing\n    key: secret\n",
    );
    await applyYaml(
      [
        secretYaml("team-signing", { secret: first }),
        integration,
        webhookYaml(ns, "crm", "job.created", receiver.url("/secrets/crm"), {
          headers: [
            { name: "Authorization", valueFrom: { secretKeyRef: { name: "crm-auth", key: "token" } } },
          ],
        }),
      ].join("\n---\n"),
    );
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "crm"))).toMatchObject({
        status: "False",
        reason: "SecretNotFound",
        message: "header Authorization: Secret crm-auth key token not found",
      });
    });
    expect((await getIntegration(ns)).status?.signingSecretName).toBe("team-signing");

    // A Secret without the consent label is never read: the webhook says how to consent, and
    // nothing is sent (its value would otherwise reach whatever URL the webhook names).
    await applyYaml(secretYaml("crm-auth", { token: "Bearer one" }, false));
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "crm"))).toMatchObject({
        status: "False",
        reason: "SecretNotLabelled",
        message: expect.stringContaining("kubectl label secret crm-auth webhooks.dataforce.io/usage=webhook"),
      });
    }, 30_000); // nothing wakes on an unlabelled Secret: the webhook's periodic re-check (10 s) tells
    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "job-0", data: {} });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(receiver.requests("/secrets/crm")).toHaveLength(0);

    await kubectl(["label", "secret", "crm-auth", "-n", ns, `${SECRET_USAGE_LABEL}=${SECRET_USAGE_VALUE}`]);
    await routingLive(world, ns, (r) => r?.webhooks[0]?.headers.Authorization === "Bearer one");
    // Redis holds neither the signing secret nor the header value in clear (sealed by the operator)
    const stored = JSON.stringify(await world.redis.hgetall(keyspace(world.keyTag).routing));
    expect(stored).toContain("dfw1:");
    expect(stored).not.toContain("Bearer one");
    expect(stored).not.toContain(first.slice("whsec_".length));
    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "job-1", data: {} });
    const [one] = await receiver.waitForRequests(1, "/secrets/crm");
    expect(one!.headers.authorization).toBe("Bearer one");
    new StandardWebhook(first).verify(one!.body, one!.headers as Record<string, string>);

    // Rotation: both secrets sign while the receiver moves over; and a new token.
    const changed = performance.now();
    await applyYaml(
      `${secretYaml("team-signing", { secret: `${second} ${first}` })}\n---\n${secretYaml("crm-auth", { token: "Bearer two" })}`,
    );
    await routingLive(
      world,
      ns,
      (r) => r?.signingSecrets.length === 2 && r.webhooks[0]?.headers.Authorization === "Bearer two",
    );
    const reachedMs = performance.now() - changed;
    console.log(
      `secrets: a Secret change reached the dispatcher ${Math.round(reachedMs)} ms after kubectl apply returned`,
    );
    expect(reachedMs).toBeLessThan(3_000);
    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "job-2", data: {} });
    const [, two] = await receiver.waitForRequests(2, "/secrets/crm");
    expect(two!.headers.authorization).toBe("Bearer two");
    new StandardWebhook(second).verify(two!.body, two!.headers as Record<string, string>);
    new StandardWebhook(first).verify(two!.body, two!.headers as Record<string, string>);
    expect(ready(await getWebhook(ns, "crm"))).toMatchObject({ status: "True", reason: "Active" });
  });

  it("a signing secret generated before the consent label existed is labelled and kept, not replaced", async () => {
    const ns = world.namespaces.legacy!;
    const legacy = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    await applyYaml(
      JSON.stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name: "webhook-signing-secret",
          namespace: ns,
          labels: { "webhooks.dataforce.io/generated-signing-secret": "true" },
        },
        stringData: { secret: legacy },
      }),
    );
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "job.created", receiver.url("/legacy/crm"))}`,
    );
    await eventually(async () => {
      expect(ready(await getIntegration(ns))).toMatchObject({ status: "True", reason: "Active" });
    });
    const secret = await getJson<{ metadata: { labels: Record<string, string> }; data: { secret: string } }>([
      "get",
      "secret",
      "webhook-signing-secret",
      "-n",
      ns,
    ]);
    expect(secret.metadata.labels[SECRET_USAGE_LABEL]).toBe(SECRET_USAGE_VALUE);
    expect(Buffer.from(secret.data.secret, "base64").toString()).toBe(legacy);
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "job-1", data: {} });
    const [request] = await receiver.waitForRequests(1, "/legacy/crm");
    new StandardWebhook(legacy).verify(request!.body, request!.headers as Record<string, string>);
  });
});

describe("a namespace's own ingest token", () => {
  it("is generated into a Secret named in the integration's status, and publishes into that namespace only", async () => {
    const ns = world.namespaces.tokens!;
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "job.created", receiver.url("/tokens/crm"))}`,
    );
    const integration = await eventually(async () => {
      const integration = await getIntegration(ns);
      expect(integration.status?.ingestTokenSecretName).toBe("webhook-ingest-token");
      return integration;
    });
    expect(ready(integration)).toMatchObject({ status: "True" });
    const secret = await getJson<{ data: { token: string } }>([
      "get",
      "secret",
      "webhook-ingest-token",
      "-n",
      ns,
    ]);
    const token = Buffer.from(secret.data.token, "base64").toString();
    await routingLive(
      world,
      ns,
      (r) => (r?.ingestTokenDigests.length ?? 0) === 1 && r?.webhooks.length === 1,
    );

    const post = (namespace: string, id: string) =>
      fetch(`${world.dispatcher.url}/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ type: "job.created", namespace, id, data: {} }),
      });
    expect((await post(ns, "own-1")).status).toBe(202);
    await receiver.waitForRequests(1, "/tokens/crm");
    const foreign = await post(world.namespaces.journey!, "foreign-1");
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe("NAMESPACE_FORBIDDEN");
  });

  it("comes with an event log token that reads that namespace's log only", async () => {
    const ns = world.namespaces.tokens!;
    const integration = await eventually(async () => {
      const integration = await getIntegration(ns);
      expect(integration.status?.eventLogTokenSecretName).toBe("webhook-event-log-token");
      return integration;
    });
    const name = integration.status!.eventLogTokenSecretName!;
    const secret = await getJson<{ data: { token: string } }>(["get", "secret", name, "-n", ns]);
    const token = Buffer.from(secret.data.token, "base64").toString();
    await routingLive(world, ns, (r) => (r?.eventLogTokenDigests.length ?? 0) === 1);
    const get = (query: string) =>
      fetch(`${world.dispatcher.url}/v1/deliveries${query}`, {
        headers: { authorization: `Bearer ${token}` },
      });
    const own = (await (await get("")).json()) as { items: Array<{ namespace: string }> };
    expect(own.items.length).toBeGreaterThan(0);
    expect(new Set(own.items.map((item) => item.namespace))).toEqual(new Set([ns]));
    expect((await get(`?namespace=${world.namespaces.journey}`)).status).toBe(403);
  });
});

describe("asymmetric signatures (v1a)", () => {
  it("generates an ed25519 key whose public key is in the status, and switching schemes keeps the old key signing", async () => {
    const ns = world.namespaces.ed25519!;
    await applyYaml(
      `${integrationYaml(ns, { signatureScheme: "v1a" })}---\n${webhookYaml(ns, "crm", "job.created", receiver.url("/v1a/crm"))}`,
    );
    const [publicKey] = await eventually(async () => {
      const integration = await getIntegration(ns);
      expect(ready(integration)).toMatchObject({ status: "True" });
      expect(integration.status?.signingPublicKeys).toHaveLength(1);
      return integration.status!.signingPublicKeys!;
    });
    expect(publicKey).toMatch(/^whpk_/);
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "ed-1", data: {} });
    const [first] = await receiver.waitForRequests(1, "/v1a/crm");
    expect(first!.headers["webhook-signature"]).toMatch(/^v1a,\S+$/);
    expect(await verifiesV1a(publicKey!, first!.headers, first!.body)).toBe(true);

    // back to v1: a whsec_ is added first, the ed25519 key keeps signing until removed
    await applyYaml(integrationYaml(ns, { signatureScheme: "v1" }));
    const secret = await eventually(async () => {
      const secret = await getJson<{ data: { secret: string } }>([
        "get",
        "secret",
        "webhook-signing-secret",
        "-n",
        ns,
      ]);
      const keys = Buffer.from(secret.data.secret, "base64").toString().split(" ");
      expect(keys.map((key) => key.slice(0, 5))).toEqual(["whsec", "whsk_"]);
      return keys;
    });
    await routingLive(world, ns, (r) => r?.signingSecrets.length === 2);
    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "ed-2", data: {} });
    const [, second] = await receiver.waitForRequests(2, "/v1a/crm");
    const headers = second!.headers as Record<string, string>;
    expect(headers["webhook-signature"]!.split(" ").map((s) => s.split(",")[0])).toEqual(["v1", "v1a"]);
    expect(() => new StandardWebhook(secret[0]!).verify(second!.body, headers)).not.toThrow();
    expect(await verifiesV1a(publicKey!, headers, second!.body)).toBe(true);
    expect((await kubeEvents(ns)).map((e) => e.reason)).toContain("SigningKeyAdded");
  });
});
