import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { settleDeliveries } from "../../contract/deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import { type Attempt, type FailureReason, fieldsToObject } from "../../contract/records.ts";
import { promoteDueScript } from "../../contract/scripts/promote-due.ts";
import { runScript } from "../../contract/scripts/script.ts";
import type { SettleOutcome, SettleResult } from "../../contract/scripts/settle-deliveries.ts";
import { claimIdle, readGroup, renewClaims, type StreamEntry } from "../../contract/streams.ts";
import type { Metrics } from "../metrics.ts";
import type { CompiledNamespace, CompiledWebhook, RoutingWatcher } from "../routing-table.ts";
import { decide } from "./decide.ts";
import { EndpointLimiter, type LimiterOptions } from "./endpoint-limiter.ts";
import type { AttemptResult, DeliveryClient } from "./http-client.ts";
import { signatureHeader } from "./signer.ts";

export interface DeliveryWorkerOptions {
  redis: Redis;
  /** A connection of its own: XREADGROUP blocks it. */
  reader: Redis;
  keys: Keyspace;
  consumer: string;
  routing: RoutingWatcher;
  client: DeliveryClient;
  metrics: Metrics;
  logger: Logger;
  userAgent: string;
  retentionMs: number;
  statusStreamMaxLen: number;
  claimIdleMs: number;
  schedulerTickMs: number;
  /** Work items held at once (queued per endpoint + in flight); reading pauses beyond it. */
  maxBuffered: number;
  /**
   * Work waiting for a free slot (all endpoints); reading pauses beyond it. Keeps read-ahead to
   * what the endpoints can take soon: a saturated endpoint makes the reader wait instead of
   * filling the buffer with work that would only be handed back.
   */
  maxQueued: number;
  limits: LimiterOptions;
  random?: () => number;
}

/** A work-queue entry this replica holds until its outcome is recorded. */
interface Held {
  deliveryId: string;
  /** performance.now() of the last claim renewal */
  renewedAt: number;
  /** this entry is the one attempting its delivery here (see `#active`) */
  attempting: boolean;
}

/** Everything an attempt needs, read from the record and the routing table. */
interface Work {
  entryId: string;
  deliveryId: string;
  version: string;
  namespace: CompiledNamespace;
  webhook: CompiledWebhook;
  payload: string;
  recordUrl: string;
  ingestedAt: number;
  attemptCount: number;
  cycleAttempts: number;
}

const RECORD_FIELDS = [
  "phase",
  "version",
  "namespace",
  "webhook",
  "payload",
  "url",
  "ingestedAt",
  "attemptCount",
  "cycleAttempts",
  "routingRevision",
] as const;

type RecordFields = Partial<Record<(typeof RECORD_FIELDS)[number], string | null>>;

/** The HMGET reply of RECORD_FIELDS, by field name. */
function recordFromFields(values: ReadonlyArray<string | null>): RecordFields {
  const record: RecordFields = {};
  for (let i = 0; i < RECORD_FIELDS.length; i++) record[RECORD_FIELDS[i]!] = values[i];
  return record;
}

/** How long work routed at a newer revision than this replica's waits before it is offered again. */
const ROUTING_LAG_DEFER_MS = 1_000;

const READ_COUNT = 512;
const BLOCK_MS = 500;
const SETTLE_BATCH = 500;
const PROMOTE_BATCH = 1000;
const MIN_DEFER_MS = 25;
const MAX_DEFER_MS = 30_000;

/**
 * Makes delivery attempts. Reads due deliveries from the work queue (a consumer group shared
 * by all replicas), sends each through the per-endpoint limiter, and records outcomes in
 * batches: one script call per tick records attempts, schedules retries and acknowledges the
 * entries together. Also promotes due retries, takes over work of dead replicas and renews the
 * claims of its own long-running work.
 */
export class DeliveryWorker {
  readonly #options: DeliveryWorkerOptions;
  readonly #sentCounter: { inc(): void };
  readonly #limiter: EndpointLimiter<Work>;
  readonly #held = new Map<string, Held>();
  /** deliveries with an attempt under way here: a second entry for one of them is stale */
  readonly #active = new Set<string>();
  #outbox: SettleOutcome[] = [];
  #flushing: Promise<void> | undefined;
  #flushQueued = false;
  /** set when stopping: recording gives up retrying after it (the entries stay pending) */
  #recordDeadline: number | undefined;
  #capacityWaiter: (() => void) | undefined;
  #stopping = false;
  /** after the grace period: outcomes of late attempts are handed back, not recorded */
  #abandoning = false;
  readonly #wake = new AbortController();
  readonly #stopRenewing = new AbortController();
  #loops: Promise<void>[] = [];
  #renewing: Promise<void> | undefined;
  /**
   * Room the read loop leaves free for work taken over from dead replicas: the read loop refills
   * room as soon as it frees, so without a reserve the claim loop would rarely find any.
   */
  readonly #claimReserve: number;

  constructor(options: DeliveryWorkerOptions) {
    this.#options = options;
    const limit = Math.min(options.maxBuffered, options.maxQueued);
    this.#claimReserve = limit >= 2 ? Math.max(1, Math.floor(limit / 8)) : 0;
    this.#limiter = new EndpointLimiter(options.limits, (work) => this.#attempt(work));
    options.metrics.observeLoad(() => ({ inFlight: this.#limiter.inFlight, buffered: this.#held.size }));
    this.#sentCounter = options.metrics.deliveriesCompleted.labels({ phase: "SENT", reason: "" });
  }

  get held(): number {
    return this.#held.size;
  }

  start(): void {
    this.#loops = [this.#readLoop(), this.#promoteLoop(), this.#claimLoop()];
    this.#renewing = this.#renewLoop();
  }

  /**
   * Graceful stop: no new reads; queued work is handed back to the schedule at once (another
   * replica takes it); attempts in flight get `graceMs` to finish and be recorded, after which
   * they are handed back as well.
   */
  async stop(graceMs: number): Promise<void> {
    const { logger, metrics } = this.#options;
    this.#stopping = true;
    this.#recordDeadline = Date.now() + 2 * graceMs;
    this.#wake.abort();
    this.#capacityWaiter?.();
    await Promise.all(this.#loops);
    const queued = this.#limiter.drainQueued();
    for (const work of queued) this.#handBack(work, 0);
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
    await this.#drainOutbox();
    this.#stopRenewing.abort();
    await this.#renewing;
  }

  // ── reading ──────────────────────────────────────────────────────────────────────────────

  async #readLoop(): Promise<void> {
    const { reader, keys, consumer } = this.#options;
    while (!this.#stopping) {
      const room = this.#room() - this.#claimReserve;
      if (room <= 0) {
        await new Promise<void>((resolve) => {
          this.#capacityWaiter = resolve;
        });
        this.#capacityWaiter = undefined;
        continue;
      }
      try {
        const entries = await readGroup(
          reader,
          keys.deliveries,
          CONSUMER_GROUPS.delivery,
          consumer,
          Math.min(READ_COUNT, room),
          BLOCK_MS,
        );
        if (entries.length > 0) await this.#accept(entries);
      } catch (error) {
        await this.#pauseAfter(error, "delivery-read");
      }
    }
  }

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
      const pipeline = redis.pipeline();
      for (const { deliveryId } of toRead) pipeline.hmget(keys.delivery(deliveryId), ...RECORD_FIELDS);
      const replies = (await pipeline.exec()) ?? [];
      for (let i = 0; i < toRead.length; i++) {
        const { entryId, deliveryId } = toRead[i]!;
        const [error, values] = replies[i] ?? [new Error("no reply")];
        if (error) {
          this.#release(entryId); // left pending: taken over once idle
          continue;
        }
        this.#take(entryId, deliveryId, recordFromFields(values as ReadonlyArray<string | null>));
      }
    }
  }

  #take(entryId: string, deliveryId: string, record: RecordFields): void {
    const { phase, version } = record;
    if (phase !== "QUEUED" || this.#active.has(deliveryId) || !version) {
      this.#enqueueOutcome({ m: entryId, id: deliveryId, v: "", k: "ack" });
      return;
    }
    const { routing, metrics } = this.#options;
    const route = this.#route(record.namespace ?? "", record.webhook ?? "");
    if (typeof route === "string") {
      // a replica whose routing lags behind the one the delivery was fanned out at (or that has
      // none yet) hands the work back: the webhook may exist in the newer revision
      const routedAt = Number(record.routingRevision || -1);
      if (!routing.loaded || routedAt > routing.revision) {
        const due = String(Date.now() + ROUTING_LAG_DEFER_MS);
        this.#enqueueOutcome({ m: entryId, id: deliveryId, v: version, k: "defer", due });
        metrics.deferred.inc({ reason: "routing-lag" });
        return;
      }
      this.#enqueueOutcome({ m: entryId, id: deliveryId, v: version, k: "failed", reason: route });
      return;
    }
    const work: Work = {
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
    this.#active.add(deliveryId);
    this.#held.get(entryId)!.attempting = true;
    const admission = this.#limiter.submit(route.webhook.url.origin, work);
    if (!admission.admitted) {
      this.#handBack(work, admission.retryAfterMs);
      this.#options.metrics.deferred.inc({ reason: "endpoint-busy" });
    }
  }

  #route(
    namespaceName: string,
    webhookName: string,
  ): { namespace: CompiledNamespace; webhook: CompiledWebhook } | FailureReason {
    const namespace = this.#options.routing.namespace(namespaceName);
    if (!namespace?.routing.enabled) return "integration-disabled";
    const webhook = namespace.webhooks.get(webhookName);
    if (!webhook) return "webhook-removed";
    if (webhook.route.paused) return "webhook-paused";
    return { namespace, webhook };
  }

  // ── attempting ───────────────────────────────────────────────────────────────────────────

  async #attempt(work: Work): Promise<void> {
    const { client, userAgent, logger } = this.#options;
    const { routing } = work.namespace;
    const url = work.webhook.url;
    let result: AttemptResult;
    if (url.protocol === "http:" && !routing.allowPlainHttp) {
      result = {
        startedAt: Date.now(),
        durationMs: 0,
        ok: false,
        errorCode: "destination_refused",
        error: "plain http is not allowed for this namespace (allowPlainHttp is false)",
        abortRequested: false,
      };
    } else {
      const timestamp = Math.floor(Date.now() / 1000);
      result = await client.send({
        url,
        body: work.payload,
        timeoutMs: routing.delivery.timeoutMs,
        headers: {
          ...work.webhook.headers,
          "content-type": "application/json",
          "user-agent": userAgent,
          "webhook-id": work.deliveryId,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": signatureHeader(
            work.namespace.signingKeys,
            work.deliveryId,
            timestamp,
            work.payload,
          ),
        },
      });
    }
    if (this.#abandoning) {
      this.#handBack(work, 0);
      return;
    }
    this.#countAttempt(result);

    const cycleAttempts = work.cycleAttempts + 1;
    const decision = decide(result, cycleAttempts, routing.delivery, this.#options.random);
    const attempt: Attempt = {
      number: work.attemptCount + 1,
      startedAt: new Date(result.startedAt).toISOString(),
      durationMs: result.durationMs,
    };
    if (result.statusCode !== undefined) attempt.statusCode = result.statusCode;
    if (result.errorCode !== undefined) attempt.errorCode = result.errorCode;
    if (result.error !== undefined) attempt.error = result.error;
    if (result.responseBodyPrefix !== undefined) attempt.responseBodyPrefix = result.responseBodyPrefix;

    const settle: SettleOutcome = {
      m: work.entryId,
      id: work.deliveryId,
      v: work.version,
      k: decision.kind,
      a: JSON.stringify(attempt),
    };
    if (url.href !== work.recordUrl) settle.url = url.href;
    const fields = () => ({
      deliveryId: work.deliveryId,
      namespace: routing.namespace,
      webhook: work.webhook.route.name,
      attempt: attempt.number,
    });
    if (decision.kind === "retry") {
      settle.due = String(Date.now() + decision.delayMs);
      logger.info(
        { ...fields(), error: attempt.error, retryInMs: decision.delayMs },
        "attempt failed; retry scheduled",
      );
    } else if (decision.kind === "failed") {
      settle.reason = decision.reason;
      logger.warn({ ...fields(), error: attempt.error, reason: decision.reason }, "delivery failed");
    } else if (logger.isLevelEnabled("debug")) {
      logger.debug(fields(), "delivery sent");
    }
    this.#enqueueOutcome(settle, work, result.startedAt + result.durationMs);
  }

  /** Per-outcome metric children, resolved once (label lookups cost more than the increments). */
  readonly #attemptMetrics = new Map<
    string,
    { attempts: { inc(): void }; duration: { observe(value: number): void } }
  >();

  #countAttempt(result: AttemptResult): void {
    const outcome = result.ok ? "success" : (result.errorCode ?? "network_error");
    let children = this.#attemptMetrics.get(outcome);
    if (children === undefined) {
      const { metrics } = this.#options;
      children = {
        attempts: metrics.attempts.labels({ outcome }),
        duration: metrics.attemptDuration.labels({ outcome }),
      };
      this.#attemptMetrics.set(outcome, children);
    }
    children.attempts.inc();
    children.duration.observe(result.durationMs / 1000);
  }

  /** Returns work to the shared schedule without an attempt (0: due at once, for another replica). */
  #handBack(work: Work, delayMs: number): void {
    const due = Date.now() + (delayMs === 0 ? 0 : Math.min(MAX_DEFER_MS, Math.max(MIN_DEFER_MS, delayMs)));
    this.#enqueueOutcome(
      { m: work.entryId, id: work.deliveryId, v: work.version, k: "defer", due: String(due) },
      work,
    );
  }

  // ── recording ────────────────────────────────────────────────────────────────────────────

  readonly #sentAt = new Map<string, { ingestedAt: number; finishedAt: number }>();

  #enqueueOutcome(outcome: SettleOutcome, work?: Work, finishedAt?: number): void {
    if (work !== undefined && outcome.k === "sent" && finishedAt !== undefined) {
      this.#sentAt.set(outcome.m, { ingestedAt: work.ingestedAt, finishedAt });
    }
    this.#outbox.push(outcome);
    this.#scheduleFlush();
  }

  /** Outcomes that arrive in the same tick (or while a flush runs) are recorded together. */
  #scheduleFlush(): void {
    if (this.#flushQueued || this.#flushing) return;
    this.#flushQueued = true;
    setImmediate(() => {
      this.#flushQueued = false;
      void this.#flush();
    });
  }

  /** Records everything in the outbox, one script call per batch; retries on Redis errors. */
  #flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = (async () => {
      while (this.#outbox.length > 0) {
        const batch = this.#outbox.splice(0, SETTLE_BATCH);
        try {
          const results = await this.#settle(batch);
          this.#afterSettle(batch, results);
        } catch (error) {
          this.#outbox.unshift(...batch);
          this.#options.metrics.redisErrors.inc({ loop: "delivery-settle" });
          this.#options.logger.warn({ err: error }, "recording delivery outcomes failed; retrying");
          if (this.#recordDeadline !== undefined && Date.now() > this.#recordDeadline) return;
          await sleep(200);
        }
      }
    })().finally(() => {
      this.#flushing = undefined;
      if (this.#outbox.length > 0 && this.#recordDeadline === undefined) this.#scheduleFlush();
    });
    return this.#flushing;
  }

  #settle(batch: SettleOutcome[]): Promise<string> {
    const { redis, keys } = this.#options;
    return settleDeliveries(redis, batch, this.#options, keys);
  }

  #afterSettle(batch: SettleOutcome[], results: string): void {
    const { metrics } = this.#options;
    for (let i = 0; i < batch.length; i++) {
      const outcome = batch[i]!;
      const sent = this.#sentAt.get(outcome.m);
      if (sent) this.#sentAt.delete(outcome.m);
      if ((results[i] as SettleResult) === "a") {
        if (outcome.k === "sent") {
          this.#sentCounter.inc();
          if (sent) metrics.ingestToSent.observe((sent.finishedAt - sent.ingestedAt) / 1000);
        } else if (outcome.k === "failed") {
          metrics.deliveriesCompleted.inc({
            phase: "FAILED",
            reason: outcome.reason ?? "attempts-exhausted",
          });
        }
      }
      this.#release(outcome.m);
    }
  }

  #release(entryId: string): void {
    const held = this.#held.get(entryId);
    if (held === undefined) return;
    this.#held.delete(entryId);
    if (held.attempting) this.#active.delete(held.deliveryId);
    this.#capacityWaiter?.();
  }

  /** Records what is left; gives up at the record deadline (the entries stay pending for others). */
  async #drainOutbox(): Promise<void> {
    while (this.#outbox.length > 0 || this.#flushing) {
      await this.#flush();
      if (this.#recordDeadline !== undefined && Date.now() > this.#recordDeadline) return;
    }
  }

  // ── background loops ─────────────────────────────────────────────────────────────────────

  /** Moves due retries (and handed-back work) to the work queue; also evicts work of slow endpoints. */
  async #promoteLoop(): Promise<void> {
    const { redis, keys, schedulerTickMs, metrics } = this.#options;
    while (!this.#stopping) {
      try {
        for (const { job, retryAfterMs } of this.#limiter.evictOverdue()) {
          this.#handBack(job, retryAfterMs);
          metrics.deferred.inc({ reason: "endpoint-slow" });
        }
        let moved: number;
        do {
          moved = Number(
            await runScript(
              redis,
              promoteDueScript,
              [keys.scheduled, keys.deliveries],
              [keys.prefix, Date.now(), PROMOTE_BATCH],
            ),
          );
        } while (moved === PROMOTE_BATCH && !this.#stopping);
      } catch (error) {
        await this.#pauseAfter(error, "delivery-promote");
      }
      await sleep(schedulerTickMs, undefined, { signal: this.#wake.signal }).catch(() => {});
    }
  }

  /** Takes over work that a crashed or stuck replica left unacknowledged. */
  async #claimLoop(): Promise<void> {
    const { redis, keys, consumer, claimIdleMs, metrics } = this.#options;
    while (!this.#stopping) {
      await sleep(Math.max(50, claimIdleMs / 2), undefined, { signal: this.#wake.signal }).catch(() => {});
      let cursor = "0-0";
      try {
        while (!this.#stopping) {
          const room = this.#room();
          if (room <= 0) break;
          const claimed = await claimIdle(
            redis,
            keys.deliveries,
            CONSUMER_GROUPS.delivery,
            consumer,
            claimIdleMs,
            cursor,
            Math.min(READ_COUNT, room),
          );
          cursor = claimed.cursor;
          if (claimed.deleted.length > 0) {
            await redis.xack(keys.deliveries, CONSUMER_GROUPS.delivery, ...claimed.deleted);
          }
          const foreign = claimed.entries.filter((entry) => !this.#held.has(entry.id));
          if (foreign.length > 0) {
            metrics.claimed.inc({ stream: "deliveries" }, foreign.length);
            await this.#accept(foreign, true);
          }
          if (cursor === "0-0") break;
        }
      } catch (error) {
        await this.#pauseAfter(error, "delivery-claim");
      }
    }
  }

  /** Renews the claim on work this replica still holds, so live work is never taken over. */
  async #renewLoop(): Promise<void> {
    const { redis, keys, consumer, claimIdleMs } = this.#options;
    const period = Math.max(20, claimIdleMs / 3);
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
        for (let i = 0; i < due.length; i += 1000) {
          await renewClaims(
            redis,
            keys.deliveries,
            CONSUMER_GROUPS.delivery,
            consumer,
            due.slice(i, i + 1000),
          );
        }
      } catch (error) {
        this.#options.metrics.redisErrors.inc({ loop: "delivery-renew" });
        this.#options.logger.warn({ err: error }, "renewing claims failed; retrying");
      }
    }
  }

  async #pauseAfter(error: unknown, loop: string): Promise<void> {
    if (this.#stopping) return;
    this.#options.metrics.redisErrors.inc({ loop });
    this.#options.logger.warn({ err: error, loop }, "delivery step failed; retrying");
    await sleep(500, undefined, { signal: this.#wake.signal }).catch(() => {});
  }
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
