import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import type { Redis } from "ioredis";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { keyspace } from "../contract/keys.ts";
import { TEST_SECRET_BOX } from "../test/support/fixtures.ts";
import {
  API_VERSION,
  type Webhook,
  type WebhookEvent,
  type WebhookIntegration,
} from "./api/v1alpha1/index.ts";
import type { ApiWrites } from "./api-writes.ts";
import { type Cache, customResourceParsers, type OperatorCaches } from "./caches.ts";
import { integrationReconciler } from "./reconcilers/integration.ts";

const parse = customResourceParsers();

function raw(kind: string, spec?: unknown, name: string | undefined = "default"): KubernetesObject {
  return {
    apiVersion: API_VERSION,
    kind,
    metadata: { ...(name ? { name } : {}), namespace: "acme", uid: "u", generation: 1 },
    ...(spec === undefined ? {} : { spec }),
  } as KubernetesObject;
}

function cache<T>(objects: T[]): Cache<T> {
  return { get: () => objects[0], list: () => objects };
}

describe("custom resource parsers", () => {
  it("refuse objects without a name", () => {
    expect(() => parse.webhooks(raw("Webhook", {}, ""))).toThrow(/metadata.name/);
  });

  it("give a spec-less or non-object spec an empty one, so no field read throws", () => {
    expect(parse.integrations(raw("WebhookIntegration"))).toMatchObject({ spec: {} });
    expect(parse.webhooks(raw("Webhook", "nonsense"))).toMatchObject({ spec: {} });
  });

  it("keep an integration or webhook with an invalid spec (reported InvalidSpec), and log it", () => {
    const warn = vi.fn();
    const logger = pino({ enabled: false });
    logger.warn = warn as unknown as typeof logger.warn;
    const parsers = customResourceParsers(logger);
    const webhook = raw("Webhook", { event: "job.created", url: 42 }, "hook");
    expect(parsers.webhooks(webhook)).toBe(webhook);
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ kind: "Webhook", name: "hook", issues: expect.stringContaining("url") }),
      "object with an invalid spec",
    );
  });

  it("cache WebhookEvents without their payload (memory grows with objects, not with payloads)", () => {
    const spec = {
      deliveryId: "crm-abcdefghijklmnopqrst",
      eventId: "evt-1",
      eventType: "job.created",
      webhook: "crm",
      url: "https://crm.example/hook",
      payload: JSON.stringify({ data: "x".repeat(60_000) }),
    };
    const cached = parse.events(raw("WebhookEvent", spec, spec.deliveryId)) as unknown as {
      spec: Record<string, unknown>;
    };
    expect(cached.spec).not.toHaveProperty("payload");
    expect(cached.spec.deliveryId).toBe(spec.deliveryId);
    expect(JSON.stringify(cached).length).toBeLessThan(1_000);
  });

  it("refuse a WebhookEvent whose spec does not validate", () => {
    expect(() => parse.events(raw("WebhookEvent", { deliveryId: 7 }, "evt"))).toThrow(/invalid spec/);
  });
});

describe("integration reconciler on a malformed object", () => {
  it("treats a spec-less WebhookIntegration (even unparsed) as the defaults instead of throwing TypeError", async () => {
    const integration = raw("WebhookIntegration") as WebhookIntegration; // no parse hook in between
    const patchStatus = vi.fn(async () => undefined);
    const createSecret = vi.fn(async (_namespace: string, secret: V1Secret) => secret);
    const caches: OperatorCaches = {
      integrations: cache([integration]),
      webhooks: cache<Webhook>([]),
      events: cache<WebhookEvent>([]),
      secrets: cache<V1Secret>([]),
    };
    const reconcile = integrationReconciler({
      caches,
      redis: { hget: async () => null, evalsha: async () => 1 } as unknown as Redis,
      keys: keyspace("t-caches"),
      box: TEST_SECRET_BOX,
      writes: { patchStatus, createSecret } as unknown as ApiWrites,
      generatedSecret: { name: "webhook-signing-secret", key: "secret" },
      secretExists: async () => false,
      recordEvent: () => undefined,
      logger: pino({ enabled: false }),
    });
    await reconcile(
      { key: "acme/default", namespace: "acme", name: "default" },
      new AbortController().signal,
    );
    expect(patchStatus).toHaveBeenCalledTimes(1);
    expect(JSON.stringify(patchStatus.mock.calls[0])).toContain('"reason":"IntegrationDisabled"');
  });
});
