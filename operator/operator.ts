import type { KubeConfig, KubernetesObject, V1Secret } from "@kubernetes/client-node";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { type Keyspace, keyspace } from "../contract/keys.ts";
import {
  INTEGRATION_NAME,
  MIRROR_MODES,
  type Webhook,
  type WebhookEvent,
  type WebhookIntegration,
} from "./api/v1alpha1/index.ts";
import { ApiWrites } from "./api-writes.ts";
import { asKubernetesObject, cacheOf, customResourceParsers, type OperatorCaches } from "./caches.ts";
import type { Settings } from "./config.ts";
import { annotationsChanged, anyOf, generationChanged, type WatchEvent } from "./controller/controller.ts";
import type { EventInput } from "./controller/events.ts";
import { Manager } from "./controller/manager.ts";
import { WebhookEventMirror } from "./mirror/mirror.ts";
import { TokenBucket } from "./mirror/rate-limiter.ts";
import type { MirrorMode } from "./mirror/webhook-event.ts";
import { integrationKey, integrationReconciler } from "./reconcilers/integration.ts";
import { referencedSecrets, signingSecretName } from "./reconcilers/namespace-inputs.ts";
import { LastDeliveries, webhookReconciler } from "./reconcilers/webhook.ts";
import { INTEGRATIONS, SECRETS, WEBHOOK_EVENTS, WEBHOOKS } from "./resources.ts";
import { RetentionCollector } from "./retention/collector.ts";
import { retryReconciler } from "./retry/retry.ts";
import { scopedInformer } from "./watch-scope.ts";

// The operator's wiring: which informers, which controllers watch what, and the
// leader-only runnables (mirror, retention). Everything it wires lives elsewhere:
// the machinery in controller/, the reconcilers in reconcilers/, mirror/, retry/, retention/.

const SIGNING_SECRET_KEY = "secret";

export interface Operator {
  readonly manager: Manager;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createOperator(settings: Settings, kubeConfig: KubeConfig, logger: Logger): Operator {
  const manager = new Manager({
    kubeConfig,
    logger,
    server: { host: settings.host, port: settings.port },
    leaderElection: settings.leaderElection
      ? {
          namespace: settings.leaseNamespace,
          name: settings.leaseName,
          identity: settings.identity,
          leaseDurationMs: settings.leaseDurationMs,
          renewDeadlineMs: settings.renewDeadlineMs,
          retryPeriodMs: settings.retryPeriodMs,
        }
      : false,
    gracefulShutdownMs: settings.shutdownGraceMs,
    informerDefaults: { resyncPeriodMs: settings.resyncPeriodMs },
  });
  const redis = new Redis(settings.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  const streamRedis = redis.duplicate();
  for (const client of [redis, streamRedis]) {
    client.on("error", (err: unknown) => logger.warn({ err }, "redis connection error"));
  }
  const keys: Keyspace = keyspace(settings.keyTag);

  const scope = settings.watchNamespaces;
  const parse = customResourceParsers(logger);
  const informers = {
    integrations: scopedInformer(manager, INTEGRATIONS, scope, { parse: parse.integrations }),
    webhooks: scopedInformer(manager, WEBHOOKS, scope, { parse: parse.webhooks }),
    events: scopedInformer(manager, WEBHOOK_EVENTS, scope, { parse: parse.events }),
    secrets: scopedInformer(manager, SECRETS, scope),
  };
  const caches: OperatorCaches = {
    integrations: cacheOf<WebhookIntegration>(informers.integrations),
    webhooks: cacheOf<Webhook>(informers.webhooks),
    events: cacheOf<WebhookEvent>(informers.events),
    secrets: cacheOf<V1Secret>(informers.secrets),
  };
  const writes = new ApiWrites(kubeConfig, manager.registry);
  const limiter = new TokenBucket({ qps: settings.apiQps, burst: settings.apiBurst });
  const recordEvent = (regarding: Parameters<typeof asKubernetesObject>[0], input: EventInput): void =>
    manager.events().record(asKubernetesObject(regarding), input);
  const generatedSecret = { name: settings.signingSecretName, key: SIGNING_SECRET_KEY };
  const lastDeliveries = new LastDeliveries();
  const workers = settings.reconcileWorkers;

  // WebhookIntegration: the namespace's routing. Any change in the namespace reconciles it.
  manager.controller({
    name: "webhookintegration",
    for: informers.integrations,
    forPredicate: generationChanged,
    watches: [
      {
        // Spec changes, and the webhook's own verdict changes (a 410 Gone takes it out of the routing).
        informer: informers.webhooks,
        predicate: anyOf(generationChanged, readyReasonChanged),
        map: (webhook) => integrationKey(namespaceOf(webhook)),
      },
      {
        informer: informers.secrets,
        predicate: dataChanged,
        map: (secret) =>
          secretIsRead(caches, secret, generatedSecret.name)
            ? integrationKey(namespaceOf(secret))
            : undefined,
      },
    ],
    reconcile: integrationReconciler({ caches, redis, keys, writes, generatedSecret, recordEvent, logger }),
    workers,
  });

  // Webhook: its Ready verdict and last delivery.
  const webhookController = manager.controller({
    name: "webhook",
    for: informers.webhooks,
    forPredicate: generationChanged,
    watches: [
      {
        informer: informers.integrations,
        predicate: generationChanged,
        map: (integration) => webhookKeys(caches, namespaceOf(integration)),
      },
      {
        informer: informers.secrets,
        predicate: dataChanged,
        map: (secret) =>
          secretIsRead(caches, secret, generatedSecret.name)
            ? webhookKeys(caches, namespaceOf(secret))
            : undefined,
      },
    ],
    reconcile: webhookReconciler({ caches, writes, generatedSecret, lastDeliveries, recordEvent, logger }),
    workers,
  });

  // WebhookEvent: retry requests (annotation changes only; the mirror's own writes do not count).
  manager.controller({
    name: "webhookevent_retry",
    for: informers.events,
    forPredicate: annotationsChanged,
    reconcile: retryReconciler({ caches, redis, keys, writes, limiter, recordEvent, logger }),
    workers,
  });

  const retention = new RetentionCollector({
    caches,
    writes,
    limiter,
    registry: manager.registry,
    logger,
    intervalMs: settings.retentionIntervalMs,
  });
  const mirror = new WebhookEventMirror({
    redis,
    keys,
    reader: streamRedis,
    consumer: settings.identity,
    writes,
    limiter,
    registry: manager.registry,
    logger,
    workers: settings.mirrorWorkers,
    context: {
      policy: (namespace) => ({
        mode: mirrorMode(caches.integrations.get(namespace, INTEGRATION_NAME)),
        retentionMs: retention.policy(namespace).retentionMs,
      }),
      existing: (namespace, name) => caches.events.get(namespace, name),
      webhookUid: (namespace, name) => caches.webhooks.get(namespace, name)?.metadata.uid,
      retiredUpTo: (namespace) => retention.retiredUpTo(namespace),
      staleQueued: (olderThanMs) => staleQueued(caches, olderThanMs),
      onDelivery: (delivery) => {
        const key = lastDeliveries.observe(delivery);
        // Coalesced: at most about one Webhook status write per second per webhook;
        // at once when the receiver said 410 Gone (the webhook stops delivering).
        if (key) webhookController.enqueue(key, delivery.failureReason === "endpoint-gone" ? 0 : 1_000);
      },
      recordEvent,
    },
  });
  const cachesSynced = () => Promise.all(Object.values(informers).map((i) => i.waitForSync()));
  manager.add({
    name: "webhookevent-mirror",
    start: async () => {
      await cachesSynced();
      await mirror.start();
    },
    stop: () => mirror.stop(),
  });
  manager.add({
    name: "webhookevent-retention",
    start: async () => {
      await cachesSynced();
      retention.start();
    },
    stop: () => retention.stop(),
  });

  return {
    manager,
    async start() {
      await Promise.all([redis.connect(), streamRedis.connect()]);
      await manager.start();
    },
    async stop() {
      await manager.stop();
      streamRedis.disconnect();
      await redis.quit().catch(() => undefined);
    },
  };
}

/** WebhookEvents showing QUEUED whose status was last written more than `olderThanMs` ago. */
function* staleQueued(
  caches: OperatorCaches,
  olderThanMs: number,
): Generator<{ namespace: string; name: string }> {
  const cutoff = Date.now() - olderThanMs;
  for (const event of caches.events.list()) {
    if (event.status?.phase !== "QUEUED") continue;
    const written = Date.parse(
      event.status.conditions?.find((c) => c.type === "Ready")?.lastTransitionTime ??
        event.metadata.creationTimestamp ??
        "",
    );
    const lastAttempt = Date.parse(event.status.attemptHistory?.at(-1)?.time ?? "");
    if (Math.max(written || 0, lastAttempt || 0) < cutoff) {
      yield { namespace: event.metadata.namespace, name: event.metadata.name };
    }
  }
}

function namespaceOf(object: KubernetesObject): string {
  return object.metadata?.namespace ?? "";
}

function webhookKeys(caches: OperatorCaches, namespace: string): string[] {
  return caches.webhooks.list(namespace).map((w) => `${namespace}/${w.metadata.name}`);
}

/** Whether the namespace's integration or webhooks read this Secret (the generated one included). */
function secretIsRead(caches: OperatorCaches, secret: KubernetesObject, generatedName: string): boolean {
  const namespace = namespaceOf(secret);
  const integration = caches.integrations.get(namespace, INTEGRATION_NAME);
  const webhooks = caches.webhooks.list(namespace);
  if (!integration && webhooks.length === 0) return false;
  const names = referencedSecrets(signingSecretName(integration), webhooks, {
    name: generatedName,
    key: "",
  });
  return names.has(secret.metadata?.name ?? "");
}

/** The Ready reason of an object changed (status updates that matter to other reconcilers). */
function readyReasonChanged(event: WatchEvent<KubernetesObject>): boolean {
  if (event.type !== "update") return false;
  const reason = (object: KubernetesObject) =>
    (
      object as { status?: { conditions?: Array<{ type: string; reason: string }> } }
    ).status?.conditions?.find((c) => c.type === "Ready")?.reason;
  return reason(event.old) !== reason(event.object);
}

/** Secrets have no generation: any change of their content (or a resync) counts. */
function dataChanged(event: WatchEvent<KubernetesObject>): boolean {
  if (event.type !== "update") return true;
  const before = event.old as V1Secret;
  const after = event.object as V1Secret;
  if (before.metadata?.resourceVersion === after.metadata?.resourceVersion) return true;
  return JSON.stringify(before.data ?? {}) !== JSON.stringify(after.data ?? {});
}

function mirrorMode(integration: WebhookIntegration | undefined): MirrorMode {
  const mode = integration?.spec?.eventLog?.mirror;
  return mode && (MIRROR_MODES as readonly string[]).includes(mode) ? mode : "All";
}
