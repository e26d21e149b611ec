import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { settleDeliveries } from "../../contract/deliveries.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { RecordLimits } from "../../contract/record-limits.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { SettleOutcome, SettleResult } from "../../contract/scripts/settle-deliveries.ts";
import type { Metrics } from "../metrics.ts";
import type { AttemptResult } from "./http-client.ts";

export interface OutcomeRecorderOptions {
  redis: RedisClient;
  keys: Keyspace;
  limits: RecordLimits;
  metrics: Metrics;
  logger: Logger;
  /** An outcome is recorded and its work-queue entry acknowledged: the worker lets the entry go. */
  onRecorded(entryId: string): void;
}

/** When an attempt that ended SENT began its life and ended, for the ingest-to-SENT histogram. */
export interface SentTiming {
  /** epoch ms */
  ingestedAt: number;
  /** epoch ms */
  finishedAt: number;
}

/** Outcomes recorded per script call. */
const SETTLE_BATCH = 500;
/** Wait before recording again after Redis failed. */
const RETRY_PAUSE_MS = 200;

/**
 * Records attempt outcomes in Redis in batches: every outcome that arrives in the same tick (or
 * while a batch is being recorded) goes into one settle script call, which writes the records,
 * schedules retries and acknowledges the work-queue entries together. Retries on Redis errors
 * until recorded (or, when stopping, until the deadline: the entries stay pending for another
 * replica). Counts attempts and completed deliveries.
 */
export class OutcomeRecorder {
  readonly #options: OutcomeRecorderOptions;
  #outbox: SettleOutcome[] = [];
  readonly #sentTimings = new Map<string, SentTiming>();
  #flushing: Promise<void> | undefined;
  #flushQueued = false;
  /** set when stopping: recording gives up retrying after it */
  #deadline: number | undefined;
  readonly #sentCounter: { inc(): void };
  /** per-outcome metric children, resolved once (label lookups cost more than the increments) */
  readonly #attemptMetrics = new Map<
    string,
    { attempts: { inc(): void }; duration: { observe(value: number): void } }
  >();

  constructor(options: OutcomeRecorderOptions) {
    this.#options = options;
    this.#sentCounter = options.metrics.deliveriesCompleted.labels({ phase: "SENT", reason: "" });
  }

  /** Outcomes waiting to be recorded. */
  get waiting(): number {
    return this.#outbox.length;
  }

  /** Queues an outcome; `sent` times a SENT one for the ingest-to-SENT histogram. */
  record(outcome: SettleOutcome, sent?: SentTiming): void {
    if (sent !== undefined && outcome.kind === "sent") this.#sentTimings.set(outcome.entryId, sent);
    this.#outbox.push(outcome);
    this.#scheduleFlush();
  }

  /** Counts an attempt by outcome, with its duration. */
  countAttempt(result: AttemptResult): void {
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

  /** Records what is left, retrying until `deadline` (epoch ms); later outcomes are not retried. */
  async drain(deadline: number): Promise<void> {
    this.#deadline = deadline;
    while (this.#outbox.length > 0 || this.#flushing) {
      await this.#flush();
      if (Date.now() > deadline) return;
    }
  }

  /** Stops retrying failed recordings after `deadline` (epoch ms); see drain. */
  giveUpAfter(deadline: number): void {
    this.#deadline = deadline;
  }

  #scheduleFlush(): void {
    if (this.#flushQueued || this.#flushing) return;
    this.#flushQueued = true;
    setImmediate(() => {
      this.#flushQueued = false;
      void this.#flush();
    });
  }

  #flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = (async () => {
      while (this.#outbox.length > 0) {
        const batch = this.#outbox.splice(0, SETTLE_BATCH);
        try {
          const { redis, keys, limits } = this.#options;
          this.#recorded(batch, await settleDeliveries(redis, batch, limits, keys));
        } catch (error) {
          this.#outbox.unshift(...batch);
          this.#options.metrics.redisErrors.inc({ loop: "delivery-settle" });
          this.#options.logger.warn({ err: error }, "recording delivery outcomes failed; retrying");
          if (this.#deadline !== undefined && Date.now() > this.#deadline) return;
          await sleep(RETRY_PAUSE_MS);
        }
      }
    })().finally(() => {
      this.#flushing = undefined;
      if (this.#outbox.length > 0 && this.#deadline === undefined) this.#scheduleFlush();
    });
    return this.#flushing;
  }

  #recorded(batch: readonly SettleOutcome[], results: string): void {
    const { metrics, onRecorded } = this.#options;
    for (let i = 0; i < batch.length; i++) {
      const outcome = batch[i]!;
      const sent = this.#sentTimings.get(outcome.entryId);
      if (sent) this.#sentTimings.delete(outcome.entryId);
      const result = results[i] as SettleResult;
      if (result === "x") {
        metrics.lost.inc({ at: "settle" });
        this.#options.logger.warn(
          { deliveryId: outcome.id, outcome: outcome.kind },
          "delivery record vanished from Redis before the attempt's outcome was recorded: counted as lost",
        );
      }
      if (result === "a") {
        if (outcome.kind === "sent") {
          this.#sentCounter.inc();
          if (sent) metrics.ingestToSent.observe((sent.finishedAt - sent.ingestedAt) / 1000);
        } else if (outcome.kind === "failed") {
          metrics.deliveriesCompleted.inc({
            phase: "FAILED",
            reason: outcome.reason ?? "attempts-exhausted",
          });
        }
      }
      onRecorded(outcome.entryId);
    }
  }
}
