import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { z } from "zod";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import { fieldsToObject } from "../../contract/records.ts";
import type { FanoutPlanInvalid } from "../../contract/scripts/fanout-events.ts";
import { StreamConsumer, type StreamEntry } from "../../contract/streams/stream-consumer.ts";
import { entryTime } from "../../contract/streams/stream-ids.ts";
import { StreamEventSchema } from "../ingest/event-schema.ts";
import { loopErrorReporter, type Metrics } from "../metrics.ts";
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
  readonly #stream: StreamConsumer;
  #loops: Promise<void>[] = [];

  constructor(options: FanoutWorkerOptions) {
    this.#options = options;
    const { redis, reader, keys, consumer, metrics, logger } = options;
    this.#stream = new StreamConsumer({
      redis,
      reader,
      stream: keys.events,
      group: CONSUMER_GROUPS.fanout,
      consumer,
      name: "fanout",
      onError: loopErrorReporter(metrics, logger),
    });
  }

  async start(): Promise<void> {
    const { claimIdleMs, metrics } = this.#options;
    await this.#stream.ensureGroup();
    const always = () => READ_COUNT;
    this.#loops = [
      this.#stream.readLoop({
        room: always,
        whenRoom: async () => {},
        blockMs: BLOCK_MS,
        handle: (entries) => this.process(entries),
      }),
      // events a crashed or stuck replica read but never recorded
      this.#stream.claimLoop({
        everyMs: Math.max(50, claimIdleMs / 2),
        minIdleMs: claimIdleMs,
        room: always,
        handle: (entries) => {
          metrics.claimed.inc({ stream: "events" }, entries.length);
          return this.process(entries);
        },
      }),
    ];
  }

  /** Stops reading; resolves when the batch at hand is recorded. */
  async stop(): Promise<void> {
    this.#stream.stop();
    await Promise.all(this.#loops);
  }

  /** Validates a batch of entries and fans it out in one script call; retried until recorded or stopping. */
  async process(entries: readonly StreamEntry[]): Promise<void> {
    const { events, invalid } = this.#parse(entries);
    while (true) {
      try {
        await this.#options.fanout.record(events, invalid);
        this.#stream.succeeded("record");
        return;
      } catch (error) {
        if (this.#stream.stopped) throw error; // left pending: another replica claims it
        await this.#stream.pauseAfter(error, "record");
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
        invalid.push({ entryId: entry.id, reason, fields: entry.fields });
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
}
