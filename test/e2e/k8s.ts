/**
 * What the e2e tests read and write with kubectl, plus the manifests they apply.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import { keyspace } from "../../contract/keys.ts";
import { type NamespaceRouting, readRoutingTable } from "../../contract/routing-config.ts";
import type {
  Condition,
  Webhook,
  WebhookEvent,
  WebhookIntegration,
} from "../../operator/api/v1alpha1/index.ts";
import { kubectl } from "../env/kubectl.ts";
import { TEST_SECRET_BOX } from "../support/fixtures.ts";
import { type E2eWorld, metricValue } from "./harness.ts";

export async function getJson<T>(args: readonly string[]): Promise<T> {
  return JSON.parse((await kubectl([...args, "-o", "json"])).stdout) as T;
}

export const getWebhook = (ns: string, name: string) => getJson<Webhook>(["get", "webhook", name, "-n", ns]);
export const getIntegration = (ns: string) =>
  getJson<WebhookIntegration>(["get", "webhookintegration", "default", "-n", ns]);
export const getEvent = (ns: string, name: string) =>
  getJson<WebhookEvent>(["get", "webhookevent", name, "-n", ns]);

export async function listEvents(ns: string, selector?: string): Promise<WebhookEvent[]> {
  const args = ["get", "webhookevents", "-n", ns];
  if (selector) args.push("-l", selector);
  return (await getJson<{ items: WebhookEvent[] }>(args)).items;
}

export function ready(object: { status?: { conditions?: Condition[] } }): Condition | undefined {
  return object.status?.conditions?.find((c) => c.type === "Ready");
}

export interface KubeEvent {
  reason: string;
  message?: string;
  type: string;
  involvedObject: { kind: string; name: string };
  count?: number;
}

/** Kubernetes Events of a namespace (the core/v1 view of what the operator records with events.k8s.io/v1). */
export async function kubeEvents(ns: string): Promise<KubeEvent[]> {
  return (await getJson<{ items: KubeEvent[] }>(["get", "events", "-n", ns])).items;
}

/** Polls `check` until it stops throwing (vi.waitFor semantics, with a readable default). */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(intervalMs);
    }
  }
}

/**
 * Waits until the namespace's routing in Redis satisfies `predicate` and the dispatcher has
 * loaded that revision (its routing_revision gauge) and is ready, so a published event is routed
 * by it.
 */
export async function routingLive(
  world: E2eWorld,
  ns: string,
  predicate: (routing: NamespaceRouting | undefined) => boolean,
  timeoutMs = 20_000,
): Promise<NamespaceRouting | undefined> {
  const keys = keyspace(world.keyTag);
  const { routing, revision } = await eventually(async () => {
    const table = await readRoutingTable(world.redis, keys, TEST_SECRET_BOX);
    const routing = table.namespaces.get(ns);
    if (!predicate(routing)) throw new Error(`routing of ${ns} not as expected: ${JSON.stringify(routing)}`);
    return { routing, revision: table.revision };
  }, timeoutMs);
  await eventually(async () => {
    const text = await (await fetch(`${world.dispatcher.url}/metrics`)).text();
    const loaded = metricValue(text, "dataforce_dispatcher_routing_revision");
    if (loaded < revision) throw new Error(`dispatcher at routing revision ${loaded}, want ${revision}`);
    // after Redis lost its data the revision restarts below the gauge: readiness says the
    // dispatcher routes again (it refuses events until the operator's new epoch is there)
    const ready = await fetch(`${world.dispatcher.url}/readyz`);
    if (ready.status !== 200) throw new Error(`dispatcher not ready (${ready.status})`);
  }, timeoutMs);
  return routing;
}

export interface IntegrationOptions {
  enabled?: boolean;
  mirror?: "All" | "FailedOnly" | "None";
  maxEvents?: number;
  retention?: string;
  maxAttempts?: number;
  signatureScheme?: "v1" | "v1a";
  circuitBreaker?: { consecutiveFailures?: number; cooldown?: string; maxCooldown?: string };
  /** spec.delivery.autoPause.after */
  autoPauseAfter?: string;
}

/** An integration with fast backoff and plain http allowed (the receivers are on 127.0.0.1). */
export function integrationYaml(ns: string, options: IntegrationOptions = {}): string {
  return stringify({
    apiVersion: "webhooks.dataforce.io/v1alpha1",
    kind: "WebhookIntegration",
    metadata: { name: "default", namespace: ns },
    spec: {
      enabled: options.enabled ?? true,
      delivery: {
        maxAttempts: options.maxAttempts ?? 3,
        timeout: "2s",
        backoff: { initialDelay: "50ms", maxDelay: "200ms", multiplier: 2 },
        ...(options.circuitBreaker ? { circuitBreaker: options.circuitBreaker } : {}),
        ...(options.autoPauseAfter ? { autoPause: { after: options.autoPauseAfter } } : {}),
      },
      eventLog: {
        mirror: options.mirror ?? "All",
        retention: options.retention ?? "1h",
        maxEvents: options.maxEvents ?? 1000,
      },
      destinationPolicy: { allowPlainHTTP: true },
      ...(options.signatureScheme ? { signatureScheme: options.signatureScheme } : {}),
    },
  });
}

export function webhookYaml(
  ns: string,
  name: string,
  event: string,
  url: string,
  extra: Record<string, unknown> = {},
): string {
  return stringify({
    apiVersion: "webhooks.dataforce.io/v1alpha1",
    kind: "Webhook",
    metadata: { name, namespace: ns },
    spec: { event, url, ...extra },
  });
}
