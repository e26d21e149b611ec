import type { KubeConfig, V1Secret } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { closeRedis, connectRedisClient } from "../common/redis-connection.ts";
import type { Keyspace } from "../contract/keys.ts";
import { partitionedKeyspace } from "../contract/partitions.ts";
import { secretBox } from "../contract/secret-box.ts";
import {
  INTEGRATION_NAME,
  MIRROR_MODES,
  SECRET_USAGE_LABEL,
  SECRET_USAGE_VALUE,
  type Webhook,
  type WebhookEvent,
  type WebhookIntegration,
} from "./api/v1alpha1/index.ts";
import { ApiWrites } from "./api-writes.ts";
import {
  asKubernetesObject,
  type CustomResourceParsers,
  cacheOf,
  customResourceParsers,
  type OperatorCaches,
} from "./caches.ts";
import type { Settings } from "./config.ts";
import type { EventInput } from "./controller/events.ts";
import { Manager } from "./controller/manager.ts";
import { counter } from "./controller/metrics.ts";
import { EndpointHealthPoller } from "./health/health-poller.ts";
import { FairLimiter } from "./mirror/fair-limiter.ts";
import { WebhookEventMirror } from "./mirror/mirror.ts";
import { TokenBucket } from "./mirror/rate-limiter.ts";
import type { MirrorMode } from "./mirror/webhook-event.ts";
import { integrationKey, integrationReconciler } from "./reconcilers/integration.ts";
import { addIntegrationController } from "./reconcilers/integration-controller.ts";
import { RoutingGuard } from "./reconcilers/routing-guard.ts";
import { secretExistsVia } from "./reconcilers/secret-exists.ts";
import { LastDeliveries } from "./reconcilers/webhook.ts";
import { addWebhookController } from "./reconcilers/webhook-controller.ts";
import { addReplayController } from "./replay/replay-controller.ts";
import { INTEGRATIONS, SECRETS, WEBHOOK_EVENTS, WEBHOOKS } from "./resources.ts";
import { RetentionCollector } from "./retention/collector.ts";
import { addRetryController } from "./retry/retry-controller.ts";
import { type OperatorInformers, scopedInformer } from "./watch-scope.ts";

// The operator, built and started: the shared informers and caches, the controllers (each wired
// beside its reconciler: reconcilers/*-controller.ts, retry/retry-controller.ts,
// replay/replay-controller.ts)
// and the leader-only runnables (mirror, retention). The machinery lives in controller/.

const SIGNING_SECRET_KEY = "secret";
/** A list page's raw objects are held until parsed: 100 WebhookEvents are at most 6.4 MiB of payloads (500: 32 MiB). */
const WEBHOOK_EVENT_PAGE_SIZE = 100;

export interface Operator {
  readonly manager: Manager;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface OperatorOptions {
  /**
   * The informers' parse hooks; default customResourceParsers(logger). Only for measuring
   * what they save (test/bench/operator-memory.ts keeps the WebhookEvent payloads with it).
   */
  parsers?: CustomResourceParsers;
}

export function createOperator(
  settings: Settings,
  kubeConfig: KubeConfig,
  logger: Logger,
  options: OperatorOptions = {},
): Operator {
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
  const connect = () => connectRedisClient(settings, { lazyConnect: true, maxRetriesPerRequest: 3 });
  const partitions = partitionedKeyspace(settings.keyTag, settings.partitions);
  const redis = connect();
  // the mirror's blocking readers, one per partition's status stream
  const streamReaders = partitions.all.map(() => connect());
  for (const client of [redis, ...streamReaders]) {
    client.on("error", (err: unknown) => logger.warn({ err }, "redis connection error"));
  }
  const keys: Keyspace = partitions.global;
  const box = secretBox(settings.encryptionKeys);

  const scope = settings.watchNamespaces;
  const parse = options.parsers ?? customResourceParsers(logger);
  const informers: OperatorInformers = {
    integrations: scopedInformer(manager, INTEGRATIONS, scope, { parse: parse.integrations }),
    webhooks: scopedInformer(manager, WEBHOOKS, scope, { parse: parse.webhooks }),
    events: scopedInformer(manager, WEBHOOK_EVENTS, scope, {
      parse: parse.events,
      pageSize: WEBHOOK_EVENT_PAGE_SIZE,
    }),
    // only Secrets that consent to be read by webhooks (and the generated ones, labelled so)
    secrets: scopedInformer(
      manager,
      { ...SECRETS, labelSelector: `${SECRET_USAGE_LABEL}=${SECRET_USAGE_VALUE}` },
      scope,
    ),
  };
  const caches: OperatorCaches = {
    integrations: cacheOf<WebhookIntegration>(informers.integrations),
    webhooks: cacheOf<Webhook>(informers.webhooks),
    events: cacheOf<WebhookEvent>(informers.events),
    secrets: cacheOf<V1Secret>(informers.secrets),
  };
  const writes = new ApiWrites(kubeConfig, manager.registry);
  // one write budget for the mirror, retries and retention, served to namespaces in turn
  const limiter = new FairLimiter(new TokenBucket({ qps: settings.apiQps, burst: settings.apiBurst }));
  const recordEvent = (regarding: Parameters<typeof asKubernetesObject>[0], input: EventInput): void =>
    manager.events().record(asKubernetesObject(regarding), input);
  const generatedSecret = { name: settings.signingSecretName, key: SIGNING_SECRET_KEY };
  const secretExists = secretExistsVia(kubeConfig);
  const lastDeliveries = new LastDeliveries();
  const workers = settings.reconcileWorkers;
  const autoPaused = counter(
    manager.registry,
    "dataforce_operator_webhooks_auto_paused_total",
    "Webhooks the operator auto-paused (Ready=False/EndpointUnhealthy): their endpoint failed for longer than the integration's delivery.autoPause.after",
    [],
  );
  // set once the webhook controller exists: the poller wakes it
  let wakeWebhook: (key: string) => void = () => {};
  const healthPoller = new EndpointHealthPoller({
    redis,
    keys,
    enqueue: (key) => wakeWebhook(key),
    webhookUid: (namespace, name) => caches.webhooks.get(namespace, name)?.metadata.uid,
    watches: (namespace) => scope.length === 0 || scope.includes(namespace),
    logger,
    intervalMs: settings.healthPollMs,
    minWriteMs: 6 * settings.healthPollMs,
  });

  // The controllers: each one's watches and predicates live beside its reconciler.
  const integrationDeps = {
    caches,
    redis,
    keys,
    box,
    writes,
    generatedSecret,
    secretExists,
    recordEvent,
    logger,
    dependencyGraceMs: settings.dependencyGraceMs,
  };
  addIntegrationController(manager, informers, integrationDeps, workers);
  const webhookController = addWebhookController(
    manager,
    informers,
    {
      caches,
      writes,
      generatedSecret,
      secretExists,
      lastDeliveries,
      recordEvent,
      logger,
      dependencyGraceMs: settings.dependencyGraceMs,
      health: healthPoller,
      onAutoPaused: () => autoPaused.inc(),
    },
    workers,
  );
  wakeWebhook = (key) => webhookController.enqueue(key, 0);
  addRetryController(
    manager,
    informers,
    { caches, redis, keys, partitions, writes, limiter, recordEvent, logger },
    workers,
  );

  addReplayController(
    manager,
    scope,
    { redis, keys, partitions, writes, recordEvent: (replay, input) => recordEvent(replay, input), logger },
    logger,
  );

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
    partitions,
    reader: streamReaders[0]!,
    readers: streamReaders,
    consumer: settings.identity,
    writes,
    limiter,
    registry: manager.registry,
    logger,
    workers: settings.mirrorWorkers,
    recheckIntervalMs: settings.mirrorRecheckIntervalMs,
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
  const rewriteRouting = integrationReconciler(integrationDeps);
  const routingGuard = new RoutingGuard({
    redis,
    keys,
    caches,
    // the integration reconcile itself (stateless), awaited: the epoch follows the whole routing
    rewrite: async (namespace) => {
      const request = { key: integrationKey(namespace), namespace, name: INTEGRATION_NAME };
      await rewriteRouting(request, new AbortController().signal);
    },
    registry: manager.registry,
    logger,
  });
  // Leader-only, once the caches are synced (they decide from what the caches hold).
  const cachesSynced = () => Promise.all(Object.values(informers).map((i) => i.waitForSync()));
  const afterSync = (name: string, runnable: { start(): unknown; stop(): Promise<void> }) =>
    manager.add({
      name,
      start: async () => {
        await cachesSynced();
        await runnable.start();
      },
      stop: () => runnable.stop(),
    });
  afterSync("webhookevent-mirror", mirror);
  afterSync("routing-guard", routingGuard);
  afterSync("webhookevent-retention", retention);
  afterSync("endpoint-health", healthPoller);

  return {
    manager,
    async start() {
      await Promise.all([redis, ...streamReaders].map((client) => client.connect()));
      await manager.start();
    },
    async stop() {
      await manager.stop();
      for (const reader of streamReaders) reader.disconnect();
      await closeRedis(redis);
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

function mirrorMode(integration: WebhookIntegration | undefined): MirrorMode {
  const mode = integration?.spec?.eventLog?.mirror;
  return mode && (MIRROR_MODES as readonly string[]).includes(mode) ? mode : "All";
}
