import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { z } from "zod";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import { fieldsToObject } from "../../contract/records.ts";
import type { FanoutPlanInvalid } from "../../contract/scripts/fanout-events.ts";
import {
  claimIdle,
  ensureConsumerGroup,
  entryTime,
  readGroup,
  type StreamEntry,
} from "../../contract/streams.ts";
import { StreamEventSchema } from "../ingest/event-schema.ts";
import type { Metrics } from "../metrics.ts";
import type { Fanout, IncomingEvent } from "./fanout.ts";

export interface FanoutWorkerOptions {
  redis: Redis;
  /** A connection of its own: XREADGROUP blocks it. */
  reader: Redis;
  keys: Keyspace;
  consumer: string;
  fanout: Fanout;
  metrics: Metrics;
  logger: Logger;
  maxEventBytes: number;
  claimIdleMs: number;
}

const READ_COUNT = 256;
const BLOCK_MS = 500;

/**
 * Reads the ingest stream (events that producers append directly) in a consumer group shared by
 * all replicas, validates each entry as the API would, and fans the valid ones out.
 */
export class FanoutWorker {
  readonly #options: FanoutWorkerOptions;
  #stopping = false;
  #loops: Promise<void>[] = [];
  #wake: AbortController = new AbortController();

  constructor(options: FanoutWorkerOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    const { redis, keys } = this.#options;
    await ensureConsumerGroup(redis, keys.events, CONSUMER_GROUPS.fanout);
    this.#loops = [this.#readLoop(), this.#claimLoop()];
  }

  /** Stops reading; resolves when the batch at hand is recorded. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake.abort();
    await Promise.all(this.#loops);
  }

  async #readLoop(): Promise<void> {
    const { reader, keys, consumer } = this.#options;
    while (!this.#stopping) {
      try {
        const entries = await readGroup(
          reader,
          keys.events,
          CONSUMER_GROUPS.fanout,
          consumer,
          READ_COUNT,
          BLOCK_MS,
        );
        if (entries.length > 0) await this.process(entries);
      } catch (error) {
        await this.#pauseAfter(error, "fanout-read");
      }
    }
  }

  /** Takes over events a crashed or stuck replica read but never recorded. */
  async #claimLoop(): Promise<void> {
    const { redis, keys, consumer, claimIdleMs, metrics } = this.#options;
    while (!this.#stopping) {
      await sleep(Math.max(50, claimIdleMs / 2), undefined, { signal: this.#wake.signal }).catch(() => {});
      let cursor = "0-0";
      try {
        do {
          const claimed = await claimIdle(
            redis,
            keys.events,
            CONSUMER_GROUPS.fanout,
            consumer,
            claimIdleMs,
            cursor,
            READ_COUNT,
          );
          cursor = claimed.cursor;
          if (claimed.deleted.length > 0)
            await redis.xack(keys.events, CONSUMER_GROUPS.fanout, ...claimed.deleted);
          if (claimed.entries.length > 0) {
            metrics.claimed.inc({ stream: "events" }, claimed.entries.length);
            await this.process(claimed.entries);
          }
        } while (cursor !== "0-0" && !this.#stopping);
      } catch (error) {
        await this.#pauseAfter(error, "fanout-claim");
      }
    }
  }

  /** Validates a batch of entries and fans it out in one script call; retried until recorded or stopping. */
  async process(entries: readonly StreamEntry[]): Promise<void> {
    const { events, invalid } = this.#parse(entries);
    while (true) {
      try {
        await this.#options.fanout.record(events, invalid);
        return;
      } catch (error) {
        if (this.#stopping) throw error; // left pending: another replica claims it
        await this.#pauseAfter(error, "fanout-record");
      }
    }
  }

  /** Entries as producers wrote them → valid events, and the rest with the reason. */
  #parse(entries: readonly StreamEntry[]): { events: IncomingEvent[]; invalid: FanoutPlanInvalid[] } {
    const { maxEventBytes, metrics, logger } = this.#options;
    const events: IncomingEvent[] = [];
    const invalid: FanoutPlanInvalid[] = [];
    for (const entry of entries) {
      const parsed = StreamEventSchema.safeParse(fieldsToObject(entry.fields));
      const tooLarge = parsed.success && Buffer.byteLength(parsed.data.data) > maxEventBytes;
      if (!parsed.success || tooLarge) {
        const reason = parsed.success
          ? `data is larger than ${maxEventBytes} bytes`
          : z.prettifyError(parsed.error);
        invalid.push({ m: entry.id, reason, fields: entry.fields });
        metrics.eventsRejected.inc({ source: "stream", reason: tooLarge ? "too-large" : "invalid" });
        logger.warn(
          { entryId: entry.id, reason },
          "invalid event in the ingest stream moved to the dead letters",
        );
        continue;
      }
      const event = parsed.data;
      const ingestedAt = entryTime(entry.id);
      events.push({
        type: event.type,
        namespace: event.namespace,
        id: event.id ?? entry.id,
        occurredAt: event.occurredAt ?? new Date(ingestedAt).toISOString(),
        data: event.data,
        ingestedAt,
        entryId: entry.id,
      });
    }
    return { events, invalid };
  }

  async #pauseAfter(error: unknown, loop: string): Promise<void> {
    if (this.#stopping) return;
    this.#options.metrics.redisErrors.inc({ loop });
    this.#options.logger.warn({ err: error, loop }, "fan-out step failed; retrying");
    await sleep(500, undefined, { signal: this.#wake.signal }).catch(() => {});
  }
}
