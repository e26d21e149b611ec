import { setTimeout as sleep } from "node:timers/promises";
import { type Logger, pino } from "pino";
import type { Registry } from "prom-client";
import {
  forwardLegacyStatus,
  noteMirrorError,
  parseStatusEntry,
  readDelivery,
} from "../../contract/deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import { partitionOfDelivery } from "../../contract/partitioned-log.ts";
import { onePartition, type Partitions } from "../../contract/partitions.ts";
import { RecordLimitsUnknownError, readRecordLimits } from "../../contract/record-limits.ts";
import type { DeliveryRecord, StatusEntry } from "../../contract/records.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { archivesToStore } from "../../contract/restore-requests.ts";
import {
  answeredMissing,
  forgetMissingAnswer,
  requestStatus,
  type StatusRequest,
} from "../../contract/status-requests.ts";
import { StreamConsumer, type StreamEntry } from "../../contract/streams/stream-consumer.ts";
import { API_VERSION, type CachedWebhookEvent } from "../api/v1alpha1/index.ts";
import type { ApiWrites } from "../api-writes.ts";
import type { EventInput } from "../controller/events.ts";
import { errorCode, isConflict, isNotFound } from "../controller/kube.ts";
import { counter, gauge } from "../controller/metrics.ts";
import { WorkQueue } from "../controller/workqueue.ts";
import type { DeliveryObservation } from "../reconcilers/webhook.ts";
import { WEBHOOK_EVENTS } from "../resources.ts";
import type { FairLimiter } from "./fair-limiter.ts";
import { PendingDeliveries } from "./pending.ts";
import {
  type MirrorMode,
  type MirrorWrite,
  planLostWrites,
  planMirrorWrites,
  shouldMirror,
} from "./webhook-event.ts";

// The WebhookEvent mirror: reads the dispatcher's status stream and makes one
// WebhookEvent per delivery show the delivery's latest state.
//
//   status stream ──read──► pending (coalesced by delivery) ──work queue──► readDelivery
//        ▲                                                                    │ plan writes
//        └──────────── XACK once the state is in the API server ◄── rate limiter ◄─┘
//
// Reading never waits for the API server, so the mirror never slows delivery; when
// it falls behind, the state changes of one delivery pile up as one pending item and
// cost one write of its latest state. Only the leader runs it.

/** What became of one delivery's state changes (the `result` label of mirror_deliveries_total). */
const MIRROR_RESULTS = ["written", "unchanged", "skipped", "expired", "rejected", "lost", "asked"] as const;
type MirrorResult = (typeof MIRROR_RESULTS)[number];

/** Deliveries whose last question to the dispatchers is remembered (the oldest are forgotten). */
const MAX_ASKED = 10_000;

/** 400 / 422: the object itself is invalid, so the same write can never succeed. */
function isRefusedAsInvalid(err: unknown): boolean {
  const code = errorCode(err);
  return code === 400 || code === 422;
}

export interface MirrorPolicy {
  mode: MirrorMode;
  retentionMs: number;
}

/** What the mirror reads from the operator's caches. */
export interface MirrorContext {
  /** The namespace's mirroring mode and retention (defaults when it has no integration). */
  policy(namespace: string): MirrorPolicy;
  /** The WebhookEvent as the informer cache has it. */
  existing(namespace: string, name: string): CachedWebhookEvent | undefined;
  /** metadata.uid of a Webhook, when the cache has it. */
  webhookUid(namespace: string, name: string): string | undefined;
  /** Retention deleted events created up to this time (epoch ms); older deliveries are not re-created. */
  retiredUpTo(namespace: string): number | undefined;
  /**
   * WebhookEvents that still show QUEUED although their last write is older than `olderThanMs`:
   * checked against the dispatcher's record now and then, in case their state changes were
   * trimmed from the capped status stream while no operator read it.
   */
  staleQueued?(olderThanMs: number): Iterable<{ namespace: string; name: string }>;
  /** Called with every delivery state the mirror reads (the Webhook status summary). */
  onDelivery?(delivery: DeliveryObservation): void;
  /** Records a Kubernetes Event. */
  recordEvent?(
    regarding: {
      apiVersion: string;
      kind: string;
      metadata: { name: string; namespace: string; uid?: string };
    },
    input: EventInput,
  ): void;
}

/** The API writes the mirror makes (ApiWrites; a fake in tests). */
export type MirrorWrites = Pick<ApiWrites, "create" | "patchStatus" | "patch">;

export interface MirrorOptions {
  redis: RedisClient;
  /** A connection of its own for the blocking reads of the status stream. */
  reader: RedisClient;
  /** The keyspace (partition 0's when partitioned: the global keys, the previous version's stream). */
  keys: Keyspace;
  /**
   * Every partition's status stream is followed (partitions.ts); absent: `keys` is the only
   * partition. `readers` holds a blocking reader per partition (`reader` is the first's).
   */
  partitions?: Partitions;
  readers?: readonly RedisClient[];
  /** This process's reader name in the mirror's consumer group. */
  consumer: string;
  writes: MirrorWrites;
  /** The write budget, shared fairly between namespaces (with retry and retention). */
  limiter: Pick<FairLimiter, "take">;
  context: MirrorContext;
  registry: Registry;
  logger?: Logger;
  /** Concurrent mirror writers (never two on one delivery). Default 4. */
  workers?: number;
  /** Stream entries read per call. Default 500. */
  readBatch?: number;
  /** Longest wait of one blocking read. Default 1000 ms. */
  blockMs?: number;
  /** Reading pauses while this many stream entries wait to be mirrored. Default 20 000. */
  maxPendingEntries?: number;
  /** How often QUEUED WebhookEvents are checked against the dispatcher's records. Default 60 s. */
  recheckIntervalMs?: number;
  /** How often the status stream of the previous version is looked at (and emptied). Default 1 s. */
  legacyStatusIntervalMs?: number;
  /**
   * How often, at most, the dispatchers are asked again about one delivery whose record is gone
   * from Redis while the durable log store may have it (status-requests.ts). Default 5 min.
   */
  statusRequestIntervalMs?: number;
}

export class WebhookEventMirror {
  private readonly options: MirrorOptions;
  private readonly log: Logger;
  private readonly pending = new PendingDeliveries();
  /**
   * The mirror's reader of the status stream. Only the leader reads, so at start whatever the
   * group holds pending is orphaned (a previous leader's, or this process's before a restart):
   * it is claimed at once. An entry is acknowledged only once its state is in the API server.
   */
  private readonly streams: StreamConsumer[];
  private readonly partitions: Partitions;
  /** The partition (index) of each delivery with entries held: acknowledged there, read there. */
  private readonly partitionOf = new Map<string, number>();
  /** Deliveries this process created recently, for the moment before the informer cache has them. */
  private readonly created = new Map<string, number>();
  /** When the dispatchers were last asked about a delivery (status-requests.ts), oldest first. */
  private readonly asked = new Map<string, number>();
  private readonly metrics;
  private queue: WorkQueue | undefined;
  private loop: Promise<void> | undefined;
  private gaugeTimer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private forwardTimer: NodeJS.Timeout | undefined;
  private forwarding: Promise<void> | undefined;
  private stopping = false;

  constructor(options: MirrorOptions) {
    this.options = options;
    this.log = (options.logger ?? pino({ enabled: false })).child({ component: "mirror" });
    this.partitions = options.partitions ?? onePartition(options.keys);
    this.streams = this.partitions.all.map(
      (keys, i) =>
        new StreamConsumer({
          redis: options.redis,
          reader: options.readers?.[i] ?? options.reader,
          stream: keys.status,
          group: CONSUMER_GROUPS.mirror,
          consumer: options.consumer,
          name: this.partitions.count === 1 ? "mirror" : `mirror-${i}`,
          onError: (err, step) =>
            this.log.warn({ err, step, partition: i }, "reading the status stream failed, retrying"),
          pause: { initialMs: 200, maxMs: 5_000 },
        }),
    );
    const { registry } = options;
    this.metrics = {
      handled: counter(
        registry,
        "dataforce_operator_mirror_deliveries_total",
        "Deliveries handled by the WebhookEvent mirror, by result",
        ["result"],
      ),
      entries: counter(
        registry,
        "dataforce_operator_mirror_entries_total",
        "Status stream entries read by the mirror",
        [],
      ),
    };
    for (const result of MIRROR_RESULTS) this.metrics.handled.inc({ result }, 0);
    const pending = this.pending;
    const lag = gauge(
      registry,
      "dataforce_operator_mirror_lag_seconds",
      "Age of the oldest delivery state change read from the status stream but not yet mirrored",
      [],
    );
    const pendingGauge = gauge(
      registry,
      "dataforce_operator_mirror_pending_deliveries",
      "Deliveries with state changes not yet mirrored",
      [],
    );
    this.refreshGauges = () => {
      const oldest = pending.oldestEntryMs();
      lag.set(oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
      pendingGauge.set(pending.size);
    };
    this.refreshGauges();
  }

  /** Updates the lag and pending gauges (called before every scrape and after every batch). */
  readonly refreshGauges: () => void;

  /** Starts mirroring: claims what earlier readers left, then follows the stream. */
  async start(): Promise<void> {
    if (this.loop) return;
    this.stopping = false;
    const queue = new WorkQueue({
      name: "webhookevent_mirror",
      registry: this.options.registry,
      backoff: { baseDelayMs: 50, maxDelayMs: 30_000 },
    });
    this.queue = queue;
    void queue.run((key) => this.mirror(queue, key), this.options.workers ?? 4);
    this.loop = Promise.all(this.streams.map((stream, i) => this.follow(queue, stream, i))).then(() => {});
    this.gaugeTimer = setInterval(this.refreshGauges, 1_000);
    this.gaugeTimer.unref();
    const recheckMs = this.options.recheckIntervalMs ?? 60_000;
    this.recheckTimer = setInterval(() => this.recheckStale(queue, recheckMs), recheckMs);
    this.recheckTimer.unref();
    const forwardMs = this.options.legacyStatusIntervalMs ?? 1_000;
    this.forwardTimer = setInterval(() => {
      this.forwarding ??= this.forwardLegacyStatus().finally(() => {
        this.forwarding = undefined;
      });
    }, forwardMs);
    this.forwardTimer.unref();
  }

  /** Stops reading and waits for writes in flight; unacknowledged entries stay pending for the next reader. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.gaugeTimer);
    clearInterval(this.recheckTimer);
    clearInterval(this.forwardTimer);
    await this.forwarding;
    await this.queue?.shutdown();
    await this.loop;
    this.loop = undefined;
    this.queue = undefined;
    this.pending.clear();
    this.partitionOf.clear();
    this.asked.clear();
    this.refreshGauges();
  }

  /**
   * Dispatchers of the previous version (a rolling upgrade) write status entries to the stream of
   * format 1, which this mirror does not read: they are moved to the one it reads.
   */
  private async forwardLegacyStatus(): Promise<void> {
    const { redis, keys } = this.options;
    try {
      const moved = await forwardLegacyStatus(redis, keys, await readRecordLimits(redis, keys));
      if (moved > 0)
        this.log.info({ entries: moved }, "moved status entries of the previous version's stream");
    } catch (err) {
      if (err instanceof RecordLimitsUnknownError) return; // no dispatcher yet: nothing was written either
      this.log.warn({ err }, "moving status entries of the previous version's stream failed, retrying");
    }
  }

  private recheckStale(queue: WorkQueue, olderThanMs: number): void {
    let queued = 0;
    for (const { namespace, name } of this.options.context.staleQueued?.(olderThanMs) ?? []) {
      if (this.pending.recheck(name)) {
        queue.add(`${namespace}/${name}`);
        queued++;
      }
    }
    if (queued > 0) this.log.debug({ deliveries: queued }, "re-checking QUEUED WebhookEvents");
  }

  private async follow(queue: WorkQueue, stream: StreamConsumer, partition: number): Promise<void> {
    const maxPending = this.options.maxPendingEntries ?? 20_000;
    let claimed = false;
    while (!this.stopping) {
      try {
        if (!claimed) {
          await stream.ensureGroup();
          const claimedEntries = await stream.claimAllPending();
          this.log.info({ entries: claimedEntries.length }, "claimed status entries left by earlier readers");
          this.accept(queue, claimedEntries, partition);
          // earlier leaders that hold nothing any more, keeping XINFO tidy
          await stream.removeIdleConsumers(0);
          claimed = true;
        }
        if (this.pending.entries >= maxPending) {
          await sleep(50);
          continue;
        }
        this.accept(
          queue,
          await stream.read(this.options.readBatch ?? 500, this.options.blockMs ?? 1000),
          partition,
        );
        stream.succeeded("read");
      } catch (err) {
        if (this.stopping) break;
        await stream.pauseAfter(err, "read");
      }
    }
  }

  private accept(queue: WorkQueue, entries: readonly StreamEntry[], partition: number): void {
    const { context } = this.options;
    const skip: string[] = [];
    for (const { id, fields } of entries) {
      const entry = decodeStatusEntry(id, fields);
      this.metrics.entries.inc();
      if (!entry) {
        skip.push(id);
        continue;
      }
      // Cheap early decision, without reading the record, for deliveries that get no WebhookEvent.
      const exists = this.exists(entry.namespace, entry.deliveryId);
      const { mode } = context.policy(entry.namespace);
      if (!shouldMirror(mode, entry.phase, exists)) {
        context.onDelivery?.({
          namespace: entry.namespace,
          webhook: entry.webhook,
          deliveryId: entry.deliveryId,
          eventId: entry.eventId,
          phase: entry.phase,
          time: entry.at,
          ...(entry.failureReason ? { failureReason: entry.failureReason } : {}),
        });
        skip.push(id);
        continue;
      }
      this.partitionOf.set(entry.deliveryId, partition);
      if (this.pending.add(entry.deliveryId, id)) queue.add(`${entry.namespace}/${entry.deliveryId}`);
    }
    if (skip.length > 0) {
      this.metrics.handled.inc({ result: "skipped" }, skip.length);
      void this.streams[partition]!.ack(skip).catch((err: unknown) => {
        // Left pending: the next reader claims them and skips them again.
        this.log.warn({ err }, "could not acknowledge skipped entries");
      });
    }
    this.refreshGauges();
  }

  /** Mirrors one delivery's latest state; throws (and keeps its entries pending) on failure. */
  private async mirror(queue: WorkQueue, key: string): Promise<void> {
    const slash = key.indexOf("/");
    const namespace = key.slice(0, slash);
    const deliveryId = key.slice(slash + 1);
    const snapshot = this.pending.take(deliveryId);
    if (!snapshot) return;
    const partition = this.partitionOf.get(deliveryId);
    try {
      // a recheck holds no entries: the delivery's partition is looked up
      const keys =
        partition === undefined
          ? await partitionOfDelivery(this.options.redis, deliveryId, this.partitions)
          : this.partitions.all[partition];
      let result: MirrorResult;
      try {
        result = await this.mirrorRecord(namespace, deliveryId, keys);
      } catch (err) {
        if (!isRefusedAsInvalid(err)) throw err;
        // The API server refuses this object as it is (a poison pill): retrying would refuse it
        // forever and hold the entries, the write budget and the pending slots of every namespace.
        result = "rejected";
        await this.reportRejected(namespace, deliveryId, err, keys ?? this.options.keys);
      }
      if (snapshot.entryIds.length > 0) await this.streams[partition ?? 0]!.ack(snapshot.entryIds);
      this.log.debug({ namespace, deliveryId, result, entries: snapshot.entryIds.length }, "mirrored");
      this.pending.settle(deliveryId);
      if (!this.pending.holds(deliveryId)) this.partitionOf.delete(deliveryId);
      this.metrics.handled.inc({ result });
      queue.forget(key);
    } catch (err) {
      this.pending.restore(deliveryId, snapshot);
      this.log.warn({ err, namespace, deliveryId }, "mirroring a delivery failed, retrying");
      throw err;
    } finally {
      this.refreshGauges();
    }
  }

  /**
   * A Warning Event on the Webhook, a note on the delivery's record (the event log shows it) and a
   * log line: this delivery has no (current) WebhookEvent.
   */
  private async reportRejected(
    namespace: string,
    deliveryId: string,
    err: unknown,
    keys: Keyspace,
  ): Promise<void> {
    const message = err instanceof Error ? err.message.slice(0, 512) : String(err);
    await noteMirrorError(
      this.options.redis,
      deliveryId,
      `the API server refused its WebhookEvent: ${message}`,
      keys,
    );
    this.log.warn(
      { namespace, deliveryId, err },
      "the API server refused this delivery's WebhookEvent; not retried",
    );
    const webhook = deliveryId.slice(0, deliveryId.lastIndexOf("-"));
    const uid = this.options.context.webhookUid(namespace, webhook);
    this.options.context.recordEvent?.(
      {
        apiVersion: API_VERSION,
        kind: "Webhook",
        metadata: { name: webhook, namespace, ...(uid ? { uid } : {}) },
      },
      {
        type: "Warning",
        reason: "WebhookEventRejected",
        action: "Mirror",
        note: `delivery ${deliveryId} could not be shown as a WebhookEvent (${message}); it stays in the dispatcher's log`,
      },
    );
  }

  private async mirrorRecord(
    namespace: string,
    deliveryId: string,
    keys: Keyspace | undefined,
  ): Promise<Exclude<MirrorResult, "rejected">> {
    const { context, redis } = this.options;
    const record = keys === undefined ? null : await readDelivery(redis, deliveryId, keys);
    if (!record) return await this.recordGone(namespace, deliveryId);
    this.asked.delete(deliveryId);
    const last = record.attempts.at(-1);
    context.onDelivery?.({
      namespace,
      webhook: record.webhook,
      deliveryId,
      eventId: record.eventId,
      phase: record.phase,
      time: record.updatedAt,
      url: record.url,
      ...(last?.statusCode === undefined ? {} : { statusCode: last.statusCode }),
      ...(record.failureReason ? { failureReason: record.failureReason } : {}),
    });

    const existing = context.existing(namespace, deliveryId);
    const exists = existing !== undefined || this.created.has(deliveryId);
    const policy = context.policy(namespace);
    if (!shouldMirror(policy.mode, record.phase, exists)) return "skipped";
    let writes: MirrorWrite[];
    if (existing) {
      writes = planMirrorWrites(existing, record, existing.metadata.ownerReferences?.[0]?.uid ?? "");
    } else {
      const createdMs = Date.parse(record.createdAt);
      const retired = context.retiredUpTo(namespace);
      if (Date.now() - createdMs > policy.retentionMs || (retired !== undefined && createdMs <= retired)) {
        return "skipped"; // retention would delete it at once
      }
      const uid = context.webhookUid(namespace, record.webhook);
      if (uid === undefined || (record.webhookUid !== "" && uid !== record.webhookUid)) {
        // The Webhook is gone (or was re-created): an object it cannot own would only be garbage.
        return "skipped";
      }
      writes = planMirrorWrites(undefined, record, uid);
    }
    if (writes.length === 0) return "unchanged";

    const previousPhase = existing?.status?.phase;
    let uid = existing?.metadata.uid;
    for (const write of writes) uid = (await this.write(namespace, deliveryId, write)) ?? uid;
    if (record.phase === "FAILED" && previousPhase !== "FAILED") this.reportFailure(record, uid);
    return "written";
  }

  /**
   * No record: expired with retention, or lost with Redis's data. A WebhookEvent still QUEUED
   * cannot have expired (records outlive any attempt schedule), so it is shown as lost, with a
   * Warning Event: a delivery is never silently gone. Unless the dispatchers archive to a durable
   * log store: there a completed delivery's record expires after the hot window, so one whose
   * state changes this mirror missed (trimmed from the capped stream) is gone too. The dispatchers
   * are asked (status-requests.ts) and it stays QUEUED until they answer: its record back with a
   * status entry (mirrored as ever), or "missing" (lost).
   */
  private async recordGone(namespace: string, deliveryId: string): Promise<"expired" | "lost" | "asked"> {
    const existing = this.options.context.existing(namespace, deliveryId);
    if (existing?.status?.phase !== "QUEUED") {
      this.asked.delete(deliveryId);
      return "expired";
    }
    const { redis } = this.options;
    const home = this.partitions.of(namespace);
    const request: StatusRequest = { deliveryId, namespace };
    const archived = await archivesToStore(redis, home);
    if (archived && !(await answeredMissing(redis, home, request))) {
      await this.askDispatchers(home, request);
      return "asked";
    }
    let uid = existing.metadata.uid;
    for (const write of planLostWrites(existing))
      uid = (await this.write(namespace, deliveryId, write)) ?? uid;
    // once the WebhookEvent says it: a failed write above finds the answer again on its retry
    if (archived) await forgetMissingAnswer(redis, home, request);
    this.asked.delete(deliveryId);
    this.log.warn({ namespace, deliveryId }, "delivery record vanished from Redis: WebhookEvent marked lost");
    this.options.context.recordEvent?.(
      {
        apiVersion: API_VERSION,
        kind: "WebhookEvent",
        metadata: { name: deliveryId, namespace, ...(uid ? { uid } : {}) },
      },
      {
        type: "Warning",
        reason: "DeliveryLost",
        action: "Mirror",
        note: archived
          ? "the delivery's record vanished from Redis (data loss) before it finished, and the durable log store does not have it either; it may or may not have reached the receiver"
          : "the delivery's record vanished from Redis (data loss) before it finished; it may or may not have reached the receiver",
      },
    );
    return "lost";
  }

  /**
   * Leaves a status request for the dispatchers, unless this delivery was asked about within the
   * interval (a request waits in Redis while the store is down; asking again covers one lost).
   */
  private async askDispatchers(keys: Keyspace, request: StatusRequest): Promise<void> {
    const now = Date.now();
    const last = this.asked.get(request.deliveryId);
    if (last !== undefined && now - last < (this.options.statusRequestIntervalMs ?? 300_000)) return;
    await requestStatus(this.options.redis, keys, request);
    this.log.debug(
      { namespace: request.namespace, deliveryId: request.deliveryId },
      "delivery record gone from Redis: asked the dispatchers whether the durable log store has it",
    );
    this.asked.delete(request.deliveryId); // to the end: the map stays oldest first
    this.asked.set(request.deliveryId, now);
    for (const id of this.asked.keys()) {
      if (this.asked.size <= MAX_ASKED) break;
      this.asked.delete(id); // at worst asked again early
    }
  }

  /** Makes one write; returns the object's uid when the API server told it (create). */
  private async write(namespace: string, name: string, write: MirrorWrite): Promise<string | undefined> {
    const { writes, limiter } = this.options;
    await limiter.take(namespace);
    const target = { namespace, name };
    switch (write.verb) {
      case "create":
        try {
          const created = await writes.create(WEBHOOK_EVENTS, namespace, write.object);
          this.rememberCreated(name);
          return created.metadata.uid;
        } catch (err) {
          if (!isConflict(err)) throw err; // AlreadyExists: the cache was behind; the status write follows
          this.rememberCreated(name);
          return undefined;
        }
      case "patchStatus":
        await writes.patchStatus(WEBHOOK_EVENTS, target, write.patch.status);
        return;
      case "patchLabels":
        try {
          await writes.patch(WEBHOOK_EVENTS, target, write.patch);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        return;
    }
  }

  /** A Warning Event on the WebhookEvent (with its uid, so `kubectl describe` shows it). */
  private reportFailure(record: DeliveryRecord, uid: string | undefined): void {
    const last = record.attempts.at(-1);
    const outcome =
      last?.statusCode !== undefined ? `HTTP ${last.statusCode}` : (last?.error ?? last?.errorCode ?? "");
    this.options.context.recordEvent?.(
      {
        apiVersion: API_VERSION,
        kind: "WebhookEvent",
        metadata: { name: record.id, namespace: record.namespace, ...(uid ? { uid } : {}) },
      },
      {
        type: "Warning",
        reason: "DeliveryFailed",
        action: "Deliver",
        note: `${record.eventType} ${record.eventId} to webhook ${record.webhook} FAILED (${record.failureReason ?? "failed"}) after ${record.cycleAttempts} attempts${outcome ? `, last: ${outcome}` : ""}`,
      },
    );
  }

  private exists(namespace: string, name: string): boolean {
    return this.created.has(name) || this.options.context.existing(namespace, name) !== undefined;
  }

  private rememberCreated(name: string): void {
    const now = Date.now();
    this.created.set(name, now);
    if (this.created.size > 10_000) {
      for (const [key, at] of this.created) {
        if (now - at < 60_000 && this.created.size <= 10_000) break;
        this.created.delete(key);
      }
    }
  }
}

/** A status stream entry, or undefined when it does not decode (it is acknowledged and skipped). */
function decodeStatusEntry(id: string, fields: readonly string[]): StatusEntry | undefined {
  try {
    return parseStatusEntry(id, fields);
  } catch {
    return undefined;
  }
}
