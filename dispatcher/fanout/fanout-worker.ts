import type { Logger } from "pino";
import { z } from "zod";
import { countFanoutFailure } from "../../contract/deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import { fieldsToObject } from "../../contract/records.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { FanoutPlanInvalid } from "../../contract/scripts/fanout-events.ts";
import { isScriptInputError } from "../../contract/scripts/script.ts";
import { StreamConsumer, type StreamEntry } from "../../contract/streams/stream-consumer.ts";
import { entryTime } from "../../contract/streams/stream-ids.ts";
import { StreamEventSchema } from "../ingest/event-schema.ts";
import { loopErrorReporter, type Metrics } from "../metrics.ts";
import type { Fanout, IncomingEvent } from "./fanout.ts";

export interface FanoutWorkerOptions {
  redis: RedisClient;
  /** A connection of its own: XREADGROUP blocks it. */
  reader: RedisClient;
  /** the partition whose ingest stream this worker reads */
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
/** Failed fan-outs of one entry on its own, by any replica, before it goes to the dead letters. */
export const MAX_FANOUT_FAILURES = 3;
/** Long enough to outlive a replica's death and another's claim; the count is moot after that. */
const FANOUT_FAILURES_TTL_MS = 24 * 60 * 60 * 1000;

/** One entry of a batch, parsed: an event to fan out, or an invalid entry for the dead letters. */
type ParsedEntry = { entry: StreamEntry } & (
  | { event: IncomingEvent; invalid?: undefined }
  | { event?: undefined; invalid: FanoutPlanInvalid; rejected: "invalid" | "too-large" }
);

/**
 * Reads the ingest stream (events that producers append directly) in a consumer group shared by
 * all replicas, validates each entry as the API would, and fans the valid ones out.
 */
export class FanoutWorker {
  readonly #options: FanoutWorkerOptions;
  readonly #stream: StreamConsumer;
  readonly #reportError: (error: unknown, loop: string) => void;
  #loops: Promise<void>[] = [];

  constructor(options: FanoutWorkerOptions) {
    this.#options = options;
    const { redis, reader, keys, consumer, metrics, logger } = options;
    this.#reportError = loopErrorReporter(metrics, logger);
    this.#stream = new StreamConsumer({
      redis,
      reader,
      stream: keys.events,
      group: CONSUMER_GROUPS.fanout,
      consumer,
      name: "fanout",
      onError: this.#reportError,
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

  /** Validates a batch of entries and fans it out; returns once every entry is recorded or dead-lettered. */
  async process(entries: readonly StreamEntry[]): Promise<void> {
    await this.#record(this.#parse(entries));
  }

  /**
   * Fans a batch out in one script call. Failures of Redis (down, loading, out of memory…) are
   * retried until they pass or the worker stops: they are never the entries' fault. When the
   * script fails on the batch's content, the batch is split in halves until the entry that
   * breaks it is alone, so the others go through; that entry goes to the dead letters once its
   * own fan-out failed MAX_FANOUT_FAILURES times (counted in Redis, across replicas), instead of
   * being retried and claimed forever and holding back the stream's trimming.
   */
  async #record(batch: readonly ParsedEntry[]): Promise<void> {
    const events = batch.flatMap((item) => item.event ?? []);
    const invalid = batch.flatMap((item) => item.invalid ?? []);
    while (true) {
      try {
        await this.#options.fanout.record(events, invalid, this.#options.keys);
        this.#stream.succeeded("record");
        this.#countRejected(batch);
        return;
      } catch (error) {
        if (this.#stream.stopped) throw error; // left pending: another replica claims it
        if (isScriptInputError(error)) {
          if (batch.length > 1) {
            this.#reportError(error, "fanout-record");
            const half = Math.ceil(batch.length / 2);
            await this.#record(batch.slice(0, half));
            await this.#record(batch.slice(half));
            return;
          }
          try {
            if (await this.#deadLetterIfFailedTooOften(batch[0]!, error)) return;
          } catch (countError) {
            if (this.#stream.stopped) throw countError;
            await this.#stream.pauseAfter(countError, "record");
            continue;
          }
        }
        await this.#stream.pauseAfter(error, "record");
      }
    }
  }

  /**
   * Counts a failed fan-out of one entry alone; at the limit, moves it to the dead letters.
   * True when the entry is settled (now, or meanwhile by another loop or replica).
   */
  async #deadLetterIfFailedTooOften(item: ParsedEntry, error: unknown): Promise<boolean> {
    const { redis, keys, fanout, metrics, logger } = this.#options;
    const entryId = item.entry.id;
    const failures = await countFanoutFailure(redis, entryId, FANOUT_FAILURES_TTL_MS, keys);
    if (failures === 0) return true; // settled meanwhile by the loop or replica that also held it
    if (failures < MAX_FANOUT_FAILURES) return false;
    // the reason goes with the entry to the dead letters; the log gets ids and Redis's error
    // text only (the serializer drops the command's arguments)
    const cause = `fan-out failed ${failures} times: ${firstLine(error)}`;
    const reason = item.invalid ? `${item.invalid.reason}\n${cause}` : cause;
    await fanout.deadLetter({ entryId, reason, fields: item.entry.fields }, keys);
    this.#stream.succeeded("record");
    metrics.eventsRejected.inc({ source: "stream", reason: "fanout-failed" });
    logger.error(
      { entryId, failures, err: error },
      "ingest stream entry whose fan-out keeps failing moved to the dead letters",
    );
    return true;
  }

  /** Invalid entries, counted and logged once they are in the dead letters. */
  #countRejected(batch: readonly ParsedEntry[]): void {
    const { metrics, logger } = this.#options;
    for (const item of batch) {
      if (!item.invalid) continue;
      metrics.eventsRejected.inc({ source: "stream", reason: item.rejected });
      logger.warn(
        { entryId: item.entry.id, reason: item.invalid.reason },
        "invalid event in the ingest stream moved to the dead letters",
      );
    }
  }

  /** Entries as producers wrote them → valid events, and the rest with the reason. */
  #parse(entries: readonly StreamEntry[]): ParsedEntry[] {
    const { maxEventBytes } = this.#options;
    return entries.map((entry): ParsedEntry => {
      const parsed = StreamEventSchema.safeParse(fieldsToObject(entry.fields));
      const tooLarge = parsed.success && Buffer.byteLength(parsed.data.data) > maxEventBytes;
      if (!parsed.success || tooLarge) {
        const reason = parsed.success
          ? `data is larger than ${maxEventBytes} bytes`
          : z.prettifyError(parsed.error);
        return {
          entry,
          invalid: { entryId: entry.id, reason, fields: entry.fields },
          rejected: tooLarge ? "too-large" : "invalid",
        };
      }
      const event = parsed.data;
      const ingestedAt = entryTime(entry.id);
      return {
        entry,
        event: {
          type: event.type,
          namespace: event.namespace,
          id: event.id ?? entry.id,
          occurredAt: event.occurredAt ?? new Date(ingestedAt).toISOString(),
          data: event.data,
          ingestedAt,
          entryId: entry.id,
        },
      };
    });
  }
}

/** The first line of an error's message, shortened: Redis's error text, not the command. */
function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message.split("\n", 1)[0] ?? "").slice(0, 300);
}
