import type { AddressInfo } from "node:net";
import type { RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { closeRedis, connectRedisClient } from "../common/redis-connection.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../contract/keys.ts";
import { type Partitions, partitionedKeyspace } from "../contract/partitions.ts";
import { publishRecordLimits, type RecordLimits } from "../contract/record-limits.ts";
import type { RedisClient } from "../contract/redis-client.ts";
import { ALL_SCRIPTS } from "../contract/scripts/index.ts";
import { loadScripts } from "../contract/scripts/script.ts";
import { secretBox } from "../contract/secret-box.ts";
import { ensureConsumerGroup } from "../contract/streams/stream-consumer.ts";
import { DEFAULT_CONSOLE_DIR } from "./api/console-routes.ts";
import { buildApi, buildMetricsServer } from "./api/server.ts";
import { ArchivedLog } from "./archive/archive-log.ts";
import { ArchiveReplayer } from "./archive/archive-replayer.ts";
import { ArchiveStore } from "./archive/archive-store.ts";
import { Archiver } from "./archive/archiver.ts";
import type { Settings } from "./config.ts";
import { DeliveryWorker, sharedCapacity } from "./delivery/delivery-worker.ts";
import { DeliveryClient } from "./delivery/http-client.ts";
import { destinationPolicy } from "./delivery/ssrf-guard.ts";
import { Fanout } from "./fanout/fanout.ts";
import { FanoutWorker } from "./fanout/fanout-worker.ts";
import { createLogger } from "./logger.ts";
import { Maintenance } from "./maintenance.ts";
import { createMetrics, type Metrics, type QueueSnapshot } from "./metrics.ts";
import { RoutingWatcher } from "./routing-table.ts";
import { USER_AGENT } from "./version.ts";

export interface Dispatcher {
  /** http://host:port the API listens on. */
  readonly url: string;
  /** http://host:port of /metrics when it has a listener of its own (DISPATCHER_METRICS_PORT). */
  readonly metricsUrl: string | undefined;
  /** partition 0's keyspace, which also holds the global keys (routing, record limits) */
  readonly keys: Keyspace;
  readonly partitions: Partitions;
  readonly metrics: Metrics;
  /** The routing configuration revision this replica applies (-1 before the first load). */
  routingRevision(): number;
  /** Graceful stop: intake first, then in-flight work (within the grace period), then connections. */
  stop(): Promise<void>;
}

/** How long an API request waits for one Redis command before it answers 503. */
const API_COMMAND_TIMEOUT_MS = 5_000;

/** Wires one dispatcher replica together and starts it. */
export async function startDispatcher(
  settings: Settings,
  logger: Logger = createLogger(settings.logLevel),
): Promise<Dispatcher> {
  const partitions = partitionedKeyspace(settings.keyTag, settings.partitions);
  const keys = partitions.global;
  const connection = (role: string, extra: Partial<RedisOptions> = {}) => {
    const client = connectRedisClient(settings, {
      connectionName: `dataforce-dispatcher:${settings.consumerName}:${role}`,
      maxRetriesPerRequest: null,
      // RESP2: ioredis decodes it with less work than RESP3 (stream replies arrive as maps there)
      protocol: 2,
      ...extra,
    });
    client.on("error", (error: Error) => logger.warn({ err: error, role }, "Redis connection error"));
    return client;
  };
  // Commands of all components share one connection; each blocking reader (one per partition)
  // and the subscriber need their own.
  const redis = connection("commands", { enableAutoPipelining: false });
  const suffix = (i: number) => (partitions.count === 1 ? "" : `-${i}`);
  const fanoutReaders = partitions.all.map((_, i) => connection(`fanout-reader${suffix(i)}`));
  const deliveryReaders = partitions.all.map((_, i) => connection(`delivery-reader${suffix(i)}`));
  const subscriber = connection("routing-subscriber");
  // The API's commands wait a bounded time: with Redis down they fail at once (no offline queue,
  // no retries) or within the command timeout, and the API answers 503 instead of hanging.
  const apiRedis = connection("api", {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: API_COMMAND_TIMEOUT_MS,
  });
  const connections = [redis, ...fanoutReaders, ...deliveryReaders, subscriber, apiRedis];

  const metrics = createMetrics(() => queueSnapshot(redis, partitions));
  const store =
    settings.postgresUrl === undefined
      ? undefined
      : new ArchiveStore({ url: settings.postgresUrl, retentionDays: settings.archiveRetentionDays });
  const limits: RecordLimits = {
    retentionMs: settings.retentionMs,
    statusStreamMaxLen: settings.statusStreamMaxLen,
    ...(store ? { archive: true } : {}),
  };
  const client = new DeliveryClient({
    connectionsPerOrigin: settings.endpointConcurrency,
    policy: destinationPolicy(settings.allowedDestinations),
  });
  const routing = new RoutingWatcher({
    redis,
    subscriber,
    keys,
    box: secretBox(settings.encryptionKeys),
    pollMs: settings.routingPollMs,
    logger,
    metrics,
  });
  // one per connection: the API's fans out on its bounded-wait connection
  const fanoutOn = (client: RedisClient) =>
    new Fanout({
      redis: client,
      partitions,
      routing,
      metrics,
      logger,
      retentionMs: settings.retentionMs,
      statusStreamMaxLen: settings.statusStreamMaxLen,
      idempotencyWindowMs: settings.idempotencyWindowMs,
      archive: store !== undefined,
    });
  const fanout = fanoutOn(redis);
  const apiFanout = fanoutOn(apiRedis);
  // one fan-out worker, delivery worker and maintenance per partition; the endpoint limits are
  // the replica's, shared by the partitions
  const streamIngest = partitions.all.map(
    (partitionKeys, i) =>
      new FanoutWorker({
        redis,
        reader: fanoutReaders[i]!,
        keys: partitionKeys,
        consumer: settings.consumerName,
        fanout,
        metrics,
        logger,
        maxEventBytes: settings.maxEventBytes,
        claimIdleMs: settings.claimIdleMs,
      }),
  );
  const endpoints = {
    maxInFlight: settings.maxInFlight,
    perEndpoint: settings.endpointConcurrency,
    maxQueuedPerEndpoint: settings.endpointMaxQueued,
    maxQueueWaitMs: settings.endpointMaxQueueWaitMs,
  };
  const shared = sharedCapacity(endpoints);
  const delivery = partitions.all.map(
    (partitionKeys, i) =>
      new DeliveryWorker({
        redis,
        reader: deliveryReaders[i]!,
        keys: partitionKeys,
        consumer: settings.consumerName,
        routing,
        client,
        metrics,
        logger,
        userAgent: USER_AGENT,
        limits,
        claimIdleMs: settings.claimIdleMs,
        schedulerTickMs: settings.schedulerTickMs,
        autoPausedRecheckMs: settings.autoPausedRecheckMs,
        maxBuffered: settings.maxBuffered,
        maxQueued: settings.maxQueued,
        endpoints,
        shared,
      }),
  );
  metrics.observeLoad(() => ({
    inFlight: shared.limiter.inFlight,
    buffered: delivery.reduce((sum, worker) => sum + worker.held, 0),
  }));
  // the log API's view over Redis and the store; the archiver serves the operator's retries of
  // deliveries only the store has through it, and walks the store's part of WebhookReplays
  const archivedLog = store && new ArchivedLog({ redis: apiRedis, partitions, store, limits });
  const archiver =
    store &&
    new Archiver({
      redis,
      partitions,
      store,
      consumer: settings.consumerName,
      hotWindowMs: settings.archiveHotWindowMs,
      limits,
      batchSize: settings.archiveBatchSize,
      intervalMs: settings.archiveIntervalMs,
      metrics,
      logger,
      retry: archivedLog ? (id, token, scope) => archivedLog.retry(id, token, scope) : undefined,
      replayer: new ArchiveReplayer({ redis, partitions, store, limits, logger }),
    });
  // with a store, the indexes reach back to the archive horizon only (the store lists the rest)
  const indexHorizon = store && (async () => Number((await redis.get(keys.archiveHorizon)) ?? 0));
  const maintenance = partitions.all.map(
    (partitionKeys) =>
      new Maintenance({
        redis,
        keys: partitionKeys,
        limits,
        intervalMs: settings.maintenanceIntervalMs,
        metrics,
        logger,
        ...(indexHorizon ? { indexHorizon } : {}),
      }),
  );

  let stopping = false;
  const app = await buildApi({
    redis: apiRedis,
    partitions,
    metrics,
    logger,
    limits,
    fanout: apiFanout,
    archive: archivedLog,
    ingestTokens: settings.ingestTokens,
    namespaceOfIngestToken: (digest) => routing.namespaceOfToken("ingest", digest),
    namespaceOfEventLogToken: (digest) => routing.namespaceOfToken("eventLog", digest),
    webhookHeaderNames: (namespace, webhook) =>
      Object.keys(routing.namespace(namespace)?.webhooks.get(webhook)?.headers ?? {}),
    adminTokens: settings.adminTokens,
    maxEventBytes: settings.maxEventBytes,
    maxBatchEvents: settings.maxBatchEvents,
    ready: () => routing.loaded && !stopping,
    serveMetrics: settings.metricsPort === undefined,
    consoleDir: DEFAULT_CONSOLE_DIR,
  });
  const metricsApp =
    settings.metricsPort === undefined ? undefined : await buildMetricsServer({ metrics, logger });

  try {
    // Listen first: /healthz answers while Redis is still unreachable, and /readyz says why the
    // replica is not ready yet, instead of a restart loop on failed liveness probes.
    await app.listen({ host: settings.host, port: settings.port });
    await metricsApp?.listen({ host: settings.host, port: settings.metricsPort });
    await loadScripts(redis, ALL_SCRIPTS);
    await publishRecordLimits(redis, keys, limits);
    for (const partitionKeys of partitions.all) {
      await ensureConsumerGroup(redis, partitionKeys.events, CONSUMER_GROUPS.fanout);
      await ensureConsumerGroup(redis, partitionKeys.deliveries, CONSUMER_GROUPS.delivery);
    }
    // the schema first: a replica that cannot reach Postgres at start still delivers (the records
    // wait in Redis), so a failure here is logged and the archiver's rounds try again
    if (store) await migrateStore(store, logger);
    await routing.start();
    for (const worker of streamIngest) await worker.start();
    for (const worker of delivery) worker.start();
    for (const loop of maintenance) loop.start();
    archiver?.start();
  } catch (error) {
    await app.close().catch(() => {});
    await metricsApp?.close().catch(() => {});
    routing.stop();
    for (const connection of connections) connection.disconnect();
    await store?.close().catch(() => {});
    throw error;
  }
  const url = listenerUrl(app.server.address() as AddressInfo);
  const metricsUrl = metricsApp && listenerUrl(metricsApp.server.address() as AddressInfo);
  logger.info(
    { url, keyPrefix: keys.prefix, partitions: partitions.count, consumer: settings.consumerName },
    "dispatcher started",
  );

  return {
    url,
    metricsUrl,
    keys,
    partitions,
    metrics,
    routingRevision: () => routing.revision,
    async stop() {
      if (stopping) return;
      stopping = true;
      logger.info("dispatcher stopping");
      await app.close();
      await Promise.all(streamIngest.map((worker) => worker.stop()));
      await Promise.all(delivery.map((worker) => worker.stop(settings.shutdownGraceMs)));
      await Promise.all(maintenance.map((loop) => loop.stop()));
      await archiver?.stop();
      await store?.close().catch(() => {});
      routing.stop();
      await client.close().catch(() => {});
      await metricsApp?.close().catch(() => {});
      await Promise.all(connections.map((connection) => closeRedis(connection)));
      logger.info("dispatcher stopped");
    },
  };
}

async function migrateStore(store: ArchiveStore, logger: Logger): Promise<void> {
  try {
    await store.migrate();
    await store.createAhead(Date.now());
  } catch (error) {
    logger.warn({ err: error }, "archive: could not prepare the Postgres schema yet; the archiver retries");
  }
}

function listenerUrl(address: AddressInfo): string {
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** The queues of every partition, summed. */
async function queueSnapshot(redis: RedisClient, partitions: Partitions): Promise<QueueSnapshot | null> {
  const snapshots = await Promise.all(partitions.all.map((keys) => partitionSnapshot(redis, keys)));
  if (snapshots.some((snapshot) => snapshot === null)) return null;
  const total: QueueSnapshot = {
    streams: {
      events: { length: 0, pending: 0 },
      deliveries: { length: 0, pending: 0 },
      status: { length: 0, pending: 0 },
    },
    scheduled: 0,
    ordered: { queues: 0, deliveries: 0 },
  };
  for (const snapshot of snapshots as QueueSnapshot[]) {
    for (const stream of ["events", "deliveries", "status"] as const) {
      total.streams[stream].length += snapshot.streams[stream].length;
      total.streams[stream].pending += snapshot.streams[stream].pending;
    }
    total.scheduled += snapshot.scheduled;
    total.ordered.queues += snapshot.ordered.queues;
    total.ordered.deliveries += snapshot.ordered.deliveries;
  }
  return total;
}

async function partitionSnapshot(redis: RedisClient, keys: Keyspace): Promise<QueueSnapshot | null> {
  const replies = await redis
    .pipeline()
    .xlen(keys.events)
    .xlen(keys.deliveries)
    .xlen(keys.status)
    .xpending(keys.events, CONSUMER_GROUPS.fanout)
    .xpending(keys.deliveries, CONSUMER_GROUPS.delivery)
    .zcard(keys.scheduled)
    .smembers(keys.orderedQueues)
    .exec();
  if (replies === null) return null;
  const value = (i: number): unknown => (replies[i]?.[0] ? undefined : replies[i]?.[1]);
  const pending = (i: number) => Number((value(i) as [number] | undefined)?.[0] ?? 0);
  return {
    streams: {
      events: { length: Number(value(0) ?? 0), pending: pending(3) },
      deliveries: { length: Number(value(1) ?? 0), pending: pending(4) },
      status: { length: Number(value(2) ?? 0), pending: 0 },
    },
    scheduled: Number(value(5) ?? 0),
    ordered: await orderedQueueLengths(redis, (value(6) as string[] | undefined) ?? []),
  };
}

/** How many ordered queues hold deliveries, and how many in all (one LLEN per ordered webhook). */
async function orderedQueueLengths(
  redis: RedisClient,
  queues: readonly string[],
): Promise<QueueSnapshot["ordered"]> {
  if (queues.length === 0) return { queues: 0, deliveries: 0 };
  const pipeline = redis.pipeline();
  for (const queue of queues) pipeline.llen(queue);
  const lengths = ((await pipeline.exec()) ?? []).map(([error, length]) => (error ? 0 : Number(length)));
  return {
    queues: lengths.filter((length) => length > 0).length,
    deliveries: lengths.reduce((sum, length) => sum + length, 0),
  };
}
