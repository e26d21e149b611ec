import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { z } from "zod";
import { StreamEventSchema } from "../ingest/event-schema.ts";
import type { Metrics } from "../metrics.ts";
import { deliveryId } from "../protocol/delivery-id.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../protocol/keys.ts";
import { type EventRecord, type EventRouting, fieldsToObject } from "../protocol/records.ts";
import { type FanoutPlan, fanoutEventsScript } from "../protocol/scripts/fanout-events.ts";
import { runScript } from "../protocol/scripts/script.ts";
import {
  claimIdle,
  ensureConsumerGroup,
  entryTime,
  readGroup,
  type StreamEntry,
} from "../protocol/streams.ts";
import type { RoutingWatcher } from "../routing-table.ts";
import { notificationPayload } from "./notification.ts";

export interface FanoutWorkerOptions {
  redis: Redis;
  /** A connection of its own: XREADGROUP blocks it. */
  reader: Redis;
  keys: Keyspace;
  consumer: string;
  routing: RoutingWatcher;
  metrics: Metrics;
  logger: Logger;
  retentionMs: number;
  statusStreamMaxLen: number;
  idempotencyWindowMs: number;
  maxEventBytes: number;
  claimIdleMs: number;
}

const READ_COUNT = 256;
const BLOCK_MS = 500;
const DEAD_LETTER_MAX_LEN = 10_000;

/**
 * Reads the ingest stream and turns each event into one delivery per subscribed, non-paused
 * webhook of its namespace (if the namespace's integration is enabled), batch by batch.
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

  /** Routes a batch and records it in one script call; retried until recorded or stopping. */
  async process(entries: readonly StreamEntry[]): Promise<void> {
    const { plan, routings } = this.#plan(entries);
    while (true) {
      try {
        await this.#record(plan, routings);
        return;
      } catch (error) {
        if (this.#stopping) throw error; // left pending: another replica claims it
        await this.#pauseAfter(error, "fanout-record");
      }
    }
  }

  #plan(entries: readonly StreamEntry[]): { plan: FanoutPlan; routings: EventRouting[] } {
    const { routing, maxEventBytes, metrics, logger } = this.#options;
    const plan: FanoutPlan = { events: [], invalid: [] };
    const routings: EventRouting[] = [];
    for (const entry of entries) {
      const parsed = StreamEventSchema.safeParse(fieldsToObject(entry.fields));
      const tooLarge = parsed.success && Buffer.byteLength(parsed.data.data) > maxEventBytes;
      if (!parsed.success || tooLarge) {
        const reason = parsed.success
          ? `data is larger than ${maxEventBytes} bytes`
          : z.prettifyError(parsed.error);
        plan.invalid.push({ m: entry.id, reason, fields: entry.fields });
        metrics.eventsRejected.inc({ source: "stream", reason: tooLarge ? "too-large" : "invalid" });
        logger.warn(
          { entryId: entry.id, reason },
          "invalid event in the ingest stream moved to the dead letters",
        );
        continue;
      }
      const event = parsed.data;
      const eventId = event.id ?? entry.id;
      const ingestedAt = entryTime(entry.id);
      const occurredAt = event.occurredAt ?? new Date(ingestedAt).toISOString();
      const namespace = routing.namespace(event.namespace);
      const subscribers = namespace?.routing.enabled ? (namespace.subscribers.get(event.type) ?? []) : [];
      const eventRouting: EventRouting = !namespace
        ? "integration-missing"
        : !namespace.routing.enabled
          ? "integration-disabled"
          : subscribers.length === 0
            ? "no-subscribers"
            : "routed";
      const deliveries = subscribers.map((route) => ({
        id: deliveryId(event.namespace, eventId, route.name),
        webhook: route.name,
        uid: route.uid,
        url: route.url,
        payload: notificationPayload({
          eventId,
          type: event.type,
          occurredAt,
          namespace: event.namespace,
          webhook: route.name,
          dataJson: event.data,
        }),
        maxAttempts: String(namespace!.routing.delivery.maxAttempts),
      }));
      const record: EventRecord = {
        id: eventId,
        type: event.type,
        namespace: event.namespace,
        occurredAt,
        ingestedAt: new Date(ingestedAt).toISOString(),
        data: event.data,
        routing: eventRouting,
        deliveryIds: deliveries.map((delivery) => delivery.id),
      };
      plan.events.push({
        m: entry.id,
        ns: event.namespace,
        id: eventId,
        type: event.type,
        occurredAt,
        ingestedAt: String(ingestedAt),
        record: JSON.stringify(record),
        deliveries,
      });
      routings.push(eventRouting);
    }
    return { plan, routings };
  }

  async #record(plan: FanoutPlan, routings: EventRouting[]): Promise<void> {
    const { redis, keys, metrics, logger } = this.#options;
    const now = Date.now();
    const created = (await runScript(
      redis,
      fanoutEventsScript,
      [keys.events, keys.deliveries, keys.status, keys.logAll, keys.logIndexes, keys.deadLetters],
      [
        keys.prefix,
        CONSUMER_GROUPS.fanout,
        now,
        new Date(now).toISOString(),
        this.#options.retentionMs,
        this.#options.statusStreamMaxLen,
        this.#options.idempotencyWindowMs,
        DEAD_LETTER_MAX_LEN,
        JSON.stringify(plan),
      ],
    )) as number[];
    let total = 0;
    created.forEach((count, i) => {
      const event = plan.events[i]!;
      if (count < 0) {
        metrics.eventsRouted.inc({ routing: "duplicate" });
        logger.debug({ namespace: event.ns, eventId: event.id }, "duplicate event id dropped");
        return;
      }
      total += count;
      metrics.eventsRouted.inc({ routing: routings[i] });
      if (routings[i] !== "routed") {
        logger.debug({ namespace: event.ns, eventId: event.id, routing: routings[i] }, "event not routed");
      }
    });
    metrics.deliveriesCreated.inc(total);
  }

  async #pauseAfter(error: unknown, loop: string): Promise<void> {
    if (this.#stopping) return;
    this.#options.metrics.redisErrors.inc({ loop });
    this.#options.logger.warn({ err: error, loop }, "fan-out step failed; retrying");
    await sleep(500, undefined, { signal: this.#wake.signal }).catch(() => {});
  }
}
