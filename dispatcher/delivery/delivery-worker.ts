import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { readDeliveries, type StoredDeliveryRead } from "../../contract/deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import type { RecordLimits } from "../../contract/record-limits.ts";
import { type FailureReason, fieldsToObject, resolveEventPart } from "../../contract/records.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { StreamConsumer, type StreamEntry } from "../../contract/streams/stream-consumer.ts";
import { loopErrorReporter, type Metrics } from "../metrics.ts";
import type { PreparedNamespace, PreparedWebhook, RoutingWatcher } from "../routing-table.ts";
import {
  attemptOutcome,
  attemptRecord,
  attemptRequest,
  handBackOutcome,
  refusedDestination,
} from "./attempt.ts";
import { CircuitBreakers } from "./circuit-breaker.ts";
import { decide } from "./decide.ts";
import { EndpointHealthTracker, failureSummary } from "./endpoint-health.ts";
import { EndpointLimiter, type LimiterOptions } from "./endpoint-limiter.ts";
import { EndpointHealthPublisher } from "./health-publisher.ts";
import type { DeliveryClient } from "./http-client.ts";
import { holdsPausedQueue, PAUSED_QUEUE_RECHECK_MS } from "./ordering.ts";
import { OutcomeRecorder } from "./outcome-recorder.ts";
import { RetryScheduler } from "./retry-scheduler.ts";
import type { Work, WorkOwner } from "./work.ts";

export interface DeliveryWorkerOptions {
  redis: RedisClient;
  /** A connection of its own: XREADGROUP blocks it. */
  reader: RedisClient;
  /** the partition whose work queue and schedule this worker serves */
  keys: Keyspace;
  consumer: string;
  routing: RoutingWatcher;
  client: DeliveryClient;
  metrics: Metrics;
  logger: Logger;
  userAgent: string;
  limits: RecordLimits;
  claimIdleMs: number;
  schedulerTickMs: number;
  /** How long the deliveries of an auto-paused webhook wait before they are looked at again (default 30 s). */
  autoPausedRecheckMs?: number;
  /** Work items held at once (queued per endpoint + in flight); reading pauses beyond it. */
  maxBuffered: number;
  /**
   * Work waiting for a free slot (all endpoints); reading pauses beyond it. Keeps read-ahead to
   * what the endpoints can take soon: a saturated endpoint makes the reader wait instead of
   * filling the buffer with work that would only be handed back.
   */
  maxQueued: number;
  endpoints: LimiterOptions;
  /**
   * The per-endpoint and global limits, shared by the workers of every partition of one replica
   * (sharedCapacity); a worker of its own makes them from `endpoints` when absent.
   */
  shared?: SharedCapacity;
  random?: () => number;
}

/**
 * What the delivery workers of one replica's partitions share: the endpoint limiter (each item
 * runs through its owner) and the wake-up of readers waiting for room, since room freed by one
 * worker's work (a shorter endpoint queue) is room for the others too.
 */
export interface SharedCapacity {
  readonly limiter: EndpointLimiter<Work>;
  /** Resolves at the next `notify`. */
  wait(): Promise<void>;
  /** Wakes every waiting reader. */
  notify(): void;
}

export function sharedCapacity(options: LimiterOptions): SharedCapacity {
  let waiters: Array<() => void> = [];
  return {
    limiter: new EndpointLimiter(options, (work) => work.owner.attempt(work)),
    wait: () => new Promise<void>((resolve) => waiters.push(resolve)),
    notify() {
      const woken = waiters;
      waiters = [];
      for (const wake of woken) wake();
    },
  };
}

/** A work-queue entry this replica holds until its outcome is recorded. */
interface Held {
  deliveryId: string;
  /** performance.now() of the last claim renewal */
  renewedAt: number;
  /** this entry is the one attempting its delivery here (see `#active`) */
  attempting: boolean;
}

/** What an attempt needs of its delivery's record (from the record, or a first attempt's work entry). */
interface RecordFields {
  phase?: string | undefined;
  version?: string | undefined;
  namespace?: string | undefined;
  webhook?: string | undefined;
  payload?: string | undefined;
  url?: string | undefined;
  /** epoch ms */
  ingestedAt?: string | undefined;
  attemptCount?: string | undefined;
  cycleAttempts?: string | undefined;
  routingRevision?: string | undefined;
}

/** The fields of a record as read (null: no record, or no event record to take its payload from). */
function recordFields(read: StoredDeliveryRead | null): RecordFields {
  if (!read) return {};
  const { header } = read.view;
  const fromEvent = resolveEventPart(read.view, read.event);
  if (!fromEvent) return {};
  return {
    phase: header.phase,
    version: String(header.version),
    namespace: header.namespace,
    webhook: header.webhook,
    payload: fromEvent.payload,
    url: header.url,
    ingestedAt: String(fromEvent.ingestedAt),
    attemptCount: String(header.attemptCount),
    cycleAttempts: String(header.cycleAttempts),
    routingRevision: header.routingRevision === undefined ? "" : String(header.routingRevision),
  };
}

/** How long work routed at a newer revision than this replica's waits before it is offered again. */
const ROUTING_LAG_DEFER_MS = 1_000;

const READ_COUNT = 512;
const BLOCK_MS = 500;
const MIN_DEFER_MS = 25;
const MAX_DEFER_MS = 30_000;

/**
 * Makes delivery attempts. Reads due deliveries from the work queue (a consumer group shared by
 * all replicas), sends each through the per-endpoint limiter, and hands outcomes to the
 * OutcomeRecorder, which records them (and acknowledges the entries) in batches. Takes over work
 * of dead replicas and renews the claims of its own long-running work; its RetryScheduler moves
 * due retries back to the work queue.
 */
export class DeliveryWorker {
  readonly #options: DeliveryWorkerOptions;
  readonly #stream: StreamConsumer;
  /** Counts and logs a failed step of any of this worker's loops. */
  readonly #reportError: (error: unknown, loop: string) => void;
  readonly #recorder: OutcomeRecorder;
  readonly #scheduler: RetryScheduler;
  readonly #limiter: EndpointLimiter<Work>;
  readonly #circuits: CircuitBreakers;
  /** endpoint health for the operator (endpoint-health.ts), published off the delivery path */
  readonly #health = new EndpointHealthTracker();
  readonly #healthPublisher: EndpointHealthPublisher;
  readonly #held = new Map<string, Held>();
  /** deliveries with an attempt under way here: a second entry for one of them is stale */
  readonly #active = new Set<string>();
  readonly #shared: SharedCapacity;
  /** after the grace period: outcomes of late attempts are handed back, not recorded */
  #abandoning = false;
  readonly #stopRenewing = new AbortController();
  #loops: Promise<void>[] = [];
  #renewing: Promise<void> | undefined;
  /**
   * Room the read loop leaves free for work taken over from dead replicas: the read loop refills
   * room as soon as it frees, so without a reserve the claim loop would rarely find any.
   */
  readonly #claimReserve: number;
  readonly #owner: WorkOwner = {
    attempt: (work) => this.#attempt(work),
    // queued work taken back unattempted (evicted, shutdown): a probe among it frees its slot
    handBack: (work, delayMs) => {
      this.#circuits.abandon(circuitKeyOf(work));
      this.#handBack(work, delayMs);
    },
  };

  constructor(options: DeliveryWorkerOptions) {
    this.#options = options;
    const { redis, reader, keys, consumer, metrics, logger } = options;
    const limit = Math.min(options.maxBuffered, options.maxQueued);
    this.#claimReserve = limit >= 2 ? Math.max(1, Math.floor(limit / 8)) : 0;
    this.#shared = options.shared ?? sharedCapacity(options.endpoints);
    this.#limiter = this.#shared.limiter;
    this.#circuits = new CircuitBreakers({
      onChange: ({ key, state, cooldownMs }) => {
        this.#health.circuit(key, state, cooldownMs === undefined ? undefined : Date.now() + cooldownMs);
        if (state === "open") {
          logger.warn(
            { webhook: key, cooldownMs },
            "circuit open: the webhook's deliveries wait for a probe",
          );
        } else if (state === "closed") {
          logger.info({ webhook: key }, "circuit closed: the webhook's endpoint answered again");
        }
      },
    });
    this.#reportError = loopErrorReporter(metrics, logger);
    this.#healthPublisher = new EndpointHealthPublisher({
      redis,
      keys,
      tracker: this.#health,
      onError: (error) => this.#reportError(error, "endpoint-health"),
    });
    this.#stream = new StreamConsumer({
      redis,
      reader,
      stream: keys.deliveries,
      group: CONSUMER_GROUPS.delivery,
      consumer,
      name: "delivery",
      onError: this.#reportError,
    });
    this.#recorder = new OutcomeRecorder({
      redis,
      keys,
      limits: options.limits,
      metrics,
      logger,
      onRecorded: (entryId) => this.#release(entryId),
    });
    this.#scheduler = new RetryScheduler({
      redis,
      keys,
      tickMs: options.schedulerTickMs,
      onTick: () => {
        for (const { job, retryAfterMs } of this.#limiter.evictOverdue()) {
          job.owner.handBack(job, retryAfterMs);
          metrics.deferred.inc({ reason: "endpoint-slow" });
        }
      },
      onError: (error) => this.#stream.pauseAfter(error, "promote"),
    });
    metrics.observeLoad(() => ({ inFlight: this.#limiter.inFlight, buffered: this.#held.size }));
  }

  get held(): number {
    return this.#held.size;
  }

  start(): void {
    const { claimIdleMs, metrics } = this.#options;
    this.#loops = [
      this.#stream.readLoop({
        room: () => Math.min(READ_COUNT, this.#room() - this.#claimReserve),
        whenRoom: () => this.#shared.wait(),
        blockMs: BLOCK_MS,
        handle: (entries) => this.#accept(entries),
      }),
      // work that a crashed or stuck replica left unacknowledged
      this.#stream.claimLoop({
        everyMs: Math.max(50, claimIdleMs / 2),
        minIdleMs: claimIdleMs,
        room: () => Math.min(READ_COUNT, this.#room()),
        handle: async (entries) => {
          const foreign = entries.filter((entry) => !this.#held.has(entry.id));
          if (foreign.length === 0) return;
          metrics.claimed.inc({ stream: "deliveries" }, foreign.length);
          await this.#accept(foreign, true);
        },
      }),
    ];
    this.#scheduler.start();
    this.#healthPublisher.start();
    this.#renewing = this.#renewLoop();
  }

  /**
   * Graceful stop: no new reads; queued work is handed back to the schedule at once (another
   * replica takes it); attempts in flight get `graceMs` to finish and be recorded, after which
   * they are handed back as well.
   */
  async stop(graceMs: number): Promise<void> {
    const { logger, metrics } = this.#options;
    const recordDeadline = Date.now() + 2 * graceMs;
    this.#recorder.giveUpAfter(recordDeadline);
    this.#stream.stop();
    this.#shared.notify();
    await Promise.all([...this.#loops, this.#scheduler.stop()]);
    const queued = this.#limiter.drainQueued();
    for (const work of queued) work.owner.handBack(work, 0);
    metrics.deferred.inc({ reason: "shutdown" }, queued.length);
    const finished = await Promise.race([
      this.#limiter.whenIdle().then(() => true),
      sleep(graceMs).then(() => false),
    ]);
    if (!finished) {
      this.#abandoning = true;
      logger.warn({ inFlight: this.#limiter.inFlight }, "grace period over: handing back attempts in flight");
      await this.#options.client.destroy();
      await this.#limiter.whenIdle();
    }
    await this.#recorder.drain(recordDeadline);
    await this.#healthPublisher.stop();
    this.#stopRenewing.abort();
    await this.#renewing;
  }

  // ── reading ──────────────────────────────────────────────────────────────────────────────

  #room(): number {
    return Math.min(
      this.#options.maxBuffered - this.#held.size,
      this.#options.maxQueued - this.#limiter.queued,
    );
  }

  /**
   * Takes new work: a first attempt's entry carries what the attempt needs; other entries (and
   * all entries taken over from another replica, `verify`) are checked against their record.
   * Each then goes to the limiter, or is settled at once (stale, or no longer routable).
   */
  async #accept(entries: readonly StreamEntry[], verify = false): Promise<void> {
    const { redis, keys } = this.#options;
    const toRead: Array<{ entryId: string; deliveryId: string }> = [];
    const now = performance.now();
    for (const entry of entries) {
      if (this.#held.has(entry.id)) continue;
      const fields = fieldsToObject(entry.fields);
      const deliveryId = fields.id ?? "";
      this.#held.set(entry.id, { deliveryId, renewedAt: now, attempting: false });
      if (!verify && fields.a !== undefined && fields.p !== undefined) {
        const [version, namespace, webhook, ingestedAt, url] = splitAttemptFields(fields.a);
        this.#take(entry.id, deliveryId, {
          phase: "QUEUED",
          version,
          namespace,
          webhook,
          payload: fields.p,
          url,
          ingestedAt,
          attemptCount: "0",
          cycleAttempts: "0",
          routingRevision: fields.r,
        });
      } else {
        toRead.push({ entryId: entry.id, deliveryId });
      }
    }
    if (toRead.length > 0) {
      let records: Array<StoredDeliveryRead | null>;
      try {
        records = await readDeliveries(
          redis,
          toRead.map((read) => read.deliveryId),
          keys,
        );
      } catch (error) {
        this.#reportError(error, "delivery-read");
        for (const { entryId } of toRead) this.#release(entryId); // left pending: taken over once idle
        return;
      }
      for (let i = 0; i < toRead.length; i++) {
        const { entryId, deliveryId } = toRead[i]!;
        this.#take(entryId, deliveryId, recordFields(records[i] ?? null));
      }
    }
  }

  #take(entryId: string, deliveryId: string, record: RecordFields): void {
    const { phase, version } = record;
    if (phase === null || phase === undefined) {
      // queued work without its record: lost with Redis's data (a partial restore, say)
      this.#options.metrics.lost.inc({ at: "read" });
      this.#options.logger.warn(
        { deliveryId },
        "delivery record vanished from Redis: work dropped, counted as lost",
      );
    }
    if (phase !== "QUEUED" || this.#active.has(deliveryId) || !version) {
      this.#recorder.record({ entryId, id: deliveryId, version: "", kind: "ack" });
      return;
    }
    const { routing, metrics } = this.#options;
    const route = this.#route(record.namespace ?? "", record.webhook ?? "");
    if (typeof route === "string") {
      // a replica whose routing lags behind the one the delivery was fanned out at (or that has
      // none yet) hands the work back: the webhook may exist in the newer revision
      const routedAt = Number(record.routingRevision || -1);
      if (!routing.loaded || routedAt > routing.revision) {
        this.#recorder.record(
          handBackOutcome({ entryId, deliveryId, version }, Date.now() + ROUTING_LAG_DEFER_MS),
        );
        metrics.deferred.inc({ reason: "routing-lag" });
        return;
      }
      if (
        route === "webhook-paused" &&
        holdsPausedQueue(routing.namespace(record.namespace ?? ""), record.webhook ?? "")
      ) {
        // pausing an ordered webhook holds its queue: the head waits, attempts unspent
        this.#recorder.record(
          handBackOutcome({ entryId, deliveryId, version }, Date.now() + PAUSED_QUEUE_RECHECK_MS),
        );
        metrics.deferred.inc({ reason: "webhook-paused" });
        return;
      }
      this.#recorder.record({ entryId, id: deliveryId, version, kind: "failed", reason: route });
      return;
    }
    const work: Work = {
      owner: this.#owner,
      entryId,
      deliveryId,
      version,
      namespace: route.namespace,
      webhook: route.webhook,
      payload: record.payload ?? "",
      recordUrl: record.url ?? "",
      ingestedAt: Number(record.ingestedAt),
      attemptCount: Number(record.attemptCount),
      cycleAttempts: Number(record.cycleAttempts),
    };
    if (route.webhook.route.autoPaused) {
      // the operator auto-paused the webhook: its deliveries wait for a resume, attempts unspent
      const recheckMs = this.#options.autoPausedRecheckMs ?? MAX_DEFER_MS;
      this.#handBack(work, recheckMs, recheckMs);
      metrics.deferred.inc({ reason: "auto-paused" });
      return;
    }
    const circuitKey = circuitKeyOf(work);
    const circuit = this.#circuits.admit(circuitKey, route.namespace.routing.delivery.circuitBreaker);
    if (!circuit.admitted) {
      // the endpoint kept failing: the delivery waits for the next probe, its attempts unspent
      this.#handBack(work, circuit.retryAfterMs, Number.POSITIVE_INFINITY);
      metrics.deferred.inc({ reason: "circuit-open" });
      return;
    }
    this.#active.add(deliveryId);
    this.#held.get(entryId)!.attempting = true;
    const admission = this.#limiter.submit(route.webhook.url.origin, work);
    if (!admission.admitted) {
      this.#circuits.abandon(circuitKey);
      this.#handBack(work, admission.retryAfterMs);
      metrics.deferred.inc({ reason: "endpoint-busy" });
    }
  }

  #route(
    namespaceName: string,
    webhookName: string,
  ): { namespace: PreparedNamespace; webhook: PreparedWebhook } | FailureReason {
    const namespace = this.#options.routing.namespace(namespaceName);
    if (!namespace?.routing.enabled) return "integration-disabled";
    const webhook = namespace.webhooks.get(webhookName);
    if (!webhook) return "webhook-removed";
    if (webhook.route.paused) return "webhook-paused";
    return { namespace, webhook };
  }

  // ── attempting ───────────────────────────────────────────────────────────────────────────

  async #attempt(work: Work): Promise<void> {
    const { client, userAgent, logger, random } = this.#options;
    const result =
      refusedDestination(work, Date.now()) ??
      (await client.send(attemptRequest(work, userAgent, Math.floor(Date.now() / 1000))));
    const circuitKey = circuitKeyOf(work);
    if (this.#abandoning) {
      this.#circuits.abandon(circuitKey);
      this.#handBack(work, 0);
      return;
    }
    this.#recorder.countAttempt(result);
    const { routing } = work.namespace;
    // a refused destination is configuration, not the endpoint's health
    const endpointFailed = !result.ok && result.errorCode !== "destination_refused";
    this.#circuits.record(circuitKey, endpointFailed, routing.delivery.circuitBreaker);
    if (result.ok || endpointFailed) {
      const failure = endpointFailed ? failureSummary(result) : undefined;
      this.#health.record(circuitKey, work.webhook.route.uid, failure, Date.now());
    }
    const decision = decide(result, work.cycleAttempts + 1, routing.delivery, random);
    const attempt = attemptRecord(work, result);
    const outcome = attemptOutcome(work, attempt, decision, Date.now());

    const fields = () => ({
      deliveryId: work.deliveryId,
      namespace: routing.namespace,
      webhook: work.webhook.route.name,
      attempt: attempt.number,
    });
    if (decision.kind === "retry") {
      logger.info(
        { ...fields(), error: attempt.error, retryInMs: decision.delayMs },
        "attempt failed; retry scheduled",
      );
    } else if (decision.kind === "failed") {
      logger.warn({ ...fields(), error: attempt.error, reason: decision.reason }, "delivery failed");
    } else if (logger.isLevelEnabled("debug")) {
      logger.debug(fields(), "delivery sent");
    }
    this.#recorder.record(outcome, {
      ingestedAt: work.ingestedAt,
      finishedAt: result.startedAt + result.durationMs,
    });
  }

  /**
   * Returns work to the shared schedule without an attempt (0: due at once, for another replica),
   * at most `maxDelayMs` later.
   */
  #handBack(work: Work, delayMs: number, maxDelayMs = MAX_DEFER_MS): void {
    const due = Date.now() + (delayMs === 0 ? 0 : Math.min(maxDelayMs, Math.max(MIN_DEFER_MS, delayMs)));
    this.#recorder.record(handBackOutcome(work, due));
  }

  /** The entry's outcome is recorded (or it could not be read): it is no longer held here. */
  #release(entryId: string): void {
    const held = this.#held.get(entryId);
    if (held === undefined) return;
    this.#held.delete(entryId);
    if (held.attempting) this.#active.delete(held.deliveryId);
    this.#shared.notify();
  }

  /** Renews the claim on work this replica still holds, so live work is never taken over. */
  async #renewLoop(): Promise<void> {
    const period = Math.max(20, this.#options.claimIdleMs / 3);
    while (!this.#stopRenewing.signal.aborted) {
      await sleep(period, undefined, { signal: this.#stopRenewing.signal }).catch(() => {});
      const now = performance.now();
      const due: string[] = [];
      for (const [entryId, held] of this.#held) {
        if (now - held.renewedAt >= period) {
          due.push(entryId);
          held.renewedAt = now;
        }
      }
      try {
        const lost = await this.#stream.renew(due);
        if (lost.length > 0) {
          // another replica claimed them while this one stalled: it attempts them now; whatever
          // this one still records for them is refused as stale (version check)
          this.#options.logger.warn(
            { entries: lost.length },
            "work claimed by another replica while held here",
          );
        }
      } catch (error) {
        this.#reportError(error, "delivery-renew");
      }
    }
  }
}

/** The circuit of a webhook (circuit-breaker.ts): `<namespace>/<webhook>`. */
function circuitKeyOf(work: Work): string {
  return `${work.namespace.routing.namespace}/${work.webhook.route.name}`;
}

/** The `a` field of a first attempt's work entry: version, namespace, webhook, ingestedAt, URL. */
function splitAttemptFields(packed: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < 4; i++) {
    const end = packed.indexOf("\n", start);
    if (end < 0) break;
    parts.push(packed.slice(start, end));
    start = end + 1;
  }
  parts.push(packed.slice(start));
  return parts;
}
