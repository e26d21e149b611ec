import type { Logger } from "pino";
import { deadLetterEntry, fanoutEvents } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import type { EventType } from "../../contract/event-types.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import { notificationPayload } from "../../contract/notification.ts";
import type { Partitions } from "../../contract/partitions.ts";
import type { EventRouting } from "../../contract/records.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { FanoutPlan, FanoutPlanEvent, FanoutPlanInvalid } from "../../contract/scripts/fanout-events.ts";
import type { Metrics } from "../metrics.ts";
import type { RoutingWatcher } from "../routing-table.ts";
import { type FilteredReason, WebhookFilters } from "./webhook-filters.ts";

/** A validated event, from the API or from the ingest stream. */
export interface IncomingEvent {
  type: EventType;
  namespace: string;
  id: string;
  occurredAt: string;
  /** `data`, serialized: a JSON object */
  data: string;
  /** epoch ms */
  ingestedAt: number;
  /** the ingest stream entry it came in (absent for the API) */
  entryId?: string;
}

export interface FanoutOptions {
  redis: RedisClient;
  /** an event is recorded in its namespace's partition */
  partitions: Partitions;
  routing: RoutingWatcher;
  metrics: Metrics;
  logger: Logger;
  retentionMs: number;
  statusStreamMaxLen: number;
  idempotencyWindowMs: number;
  /** Completed deliveries go to a durable log store: new ones join the archive's open set. */
  archive?: boolean;
}

const DEAD_LETTER_MAX_LEN = 10_000;

/** Fan-out before the routing table was loaded for the first time. */
export class RoutingNotLoadedError extends Error {
  constructor() {
    super("the routing configuration is not loaded yet");
    this.name = "RoutingNotLoadedError";
  }
}

/**
 * Turns events into deliveries: one per subscribed, non-paused webhook of the event's namespace
 * whose filter (if it has one) lets the event through, if the namespace's integration is enabled. Events ingested by the API are fanned out at once
 * (the API answers after their deliveries exist); events producers append to the ingest stream
 * are fanned out by the FanoutWorker. Either way a batch is one script call.
 */
export class Fanout {
  readonly #options: FanoutOptions;
  readonly #filters: WebhookFilters;

  constructor(options: FanoutOptions) {
    this.#options = options;
    this.#filters = new WebhookFilters(options.logger);
  }

  /**
   * Routes and records a batch (acknowledging the stream entries among them, and moving
   * `invalid` entries to the dead letters). Returns, per event, whether it was a duplicate.
   * `source`: the partition whose ingest stream the entries come from. Each event is recorded in
   * its namespace's partition, one script call per partition; an entry of another partition's
   * stream is recorded there as the API records an event, then acknowledged here (a repeat after
   * a crash between the two finds its id seen and makes nothing twice).
   */
  async record(
    events: readonly IncomingEvent[],
    invalid: readonly FanoutPlanInvalid[] = [],
    source: Keyspace = this.#options.partitions.global,
  ): Promise<boolean[]> {
    const { redis, partitions, metrics, logger, routing } = this.#options;
    // with no routing table every event would be recorded as integration-missing (and its id
    // marked as seen): refuse until the table is loaded; callers retry or answer 503
    if (!routing.loaded) throw new RoutingNotLoadedError();
    const batches = new Map<Keyspace, { plan: FanoutPlan; indexes: number[] }>();
    const batchOf = (keys: Keyspace) => {
      let batch = batches.get(keys);
      if (batch === undefined) {
        batch = { plan: { revision: routing.revision, events: [], invalid: [] }, indexes: [] };
        batches.set(keys, batch);
      }
      return batch;
    };
    if (invalid.length > 0) batchOf(source).plan.invalid.push(...invalid);
    const routings: EventRouting[] = [];
    const planned: FanoutPlanEvent[] = [];
    const foreignEntries: string[] = [];
    const filtered: FilteredReason[][] = [];
    for (const [i, event] of events.entries()) {
      const [plannedEvent, routing, filteredOut] = this.#plan(event);
      const home = partitions.of(event.namespace);
      if (home !== source && plannedEvent.entryId !== "") {
        foreignEntries.push(plannedEvent.entryId);
        plannedEvent.entryId = "";
      }
      const batch = batchOf(home);
      batch.plan.events.push(plannedEvent);
      batch.indexes.push(i);
      routings.push(routing);
      planned.push(plannedEvent);
      filtered.push(filteredOut);
    }
    const limits = { ...this.#options, deadLetterMaxLen: DEAD_LETTER_MAX_LEN };
    const created: number[] = new Array(events.length).fill(0);
    const run = async (keys: Keyspace, batch: { plan: FanoutPlan; indexes: number[] }) => {
      const counts = await fanoutEvents(redis, batch.plan, limits, keys);
      counts.forEach((count, j) => {
        created[batch.indexes[j]!] = count;
      });
    };
    // other partitions first: the source's own call acknowledges its entries
    await Promise.all(
      [...batches].filter(([keys]) => keys !== source).map(([keys, batch]) => run(keys, batch)),
    );
    const own = batches.get(source);
    if (own) await run(source, own);
    if (foreignEntries.length > 0) await redis.xack(source.events, CONSUMER_GROUPS.fanout, ...foreignEntries);
    let total = 0;
    const duplicates = created.map((count, i) => {
      const event = planned[i]!;
      if (count < 0) {
        metrics.eventsRouted.inc({ routing: "duplicate" });
        logger.debug({ namespace: event.namespace, eventId: event.id }, "duplicate event id dropped");
        return true;
      }
      total += count;
      metrics.eventsRouted.inc({ routing: routings[i] });
      // counted once recorded (a failed batch is fanned out again) and for new events only
      for (const reason of filtered[i]!) metrics.deliveriesFiltered.inc({ reason });
      if (routings[i] !== "routed" && logger.isLevelEnabled("debug")) {
        logger.debug(
          { namespace: event.namespace, eventId: event.id, routing: routings[i] },
          "event not routed",
        );
      }
      return false;
    });
    metrics.deliveriesCreated.inc(total);
    return duplicates;
  }

  /**
   * Moves one ingest stream entry that cannot be fanned out to the dead letters, with `reason`,
   * and acknowledges it (without the fan-out script, which may be what the entry breaks).
   */
  async deadLetter(entry: FanoutPlanInvalid, source: Keyspace): Promise<void> {
    await deadLetterEntry(this.#options.redis, entry, DEAD_LETTER_MAX_LEN, source);
  }

  #plan(event: IncomingEvent): [FanoutPlanEvent, EventRouting, FilteredReason[]] {
    const namespace = this.#options.routing.namespace(event.namespace);
    const subscribers = namespace?.routing.enabled ? (namespace.subscribers.get(event.type) ?? []) : [];
    const { routes, filtered } = namespace
      ? this.#filters.select(namespace, subscribers, event)
      : { routes: [], filtered: [] };
    const routing: EventRouting = !namespace
      ? "integration-missing"
      : !namespace.routing.enabled
        ? "integration-disabled"
        : subscribers.length === 0
          ? "no-subscribers"
          : routes.length === 0
            ? "filtered"
            : "routed";
    const deliveries = routes.map((route) => ({
      id: deliveryId(event.namespace, event.id, route.name),
      webhook: route.name,
      uid: route.uid,
      url: route.url,
      payload: notificationPayload({
        eventId: event.id,
        type: event.type,
        occurredAt: event.occurredAt,
        namespace: event.namespace,
        webhook: route.name,
        dataJson: event.data,
      }),
      maxAttempts: namespace!.routing.delivery.maxAttempts,
      ordered: route.ordering === "Ordered",
    }));
    const planned: FanoutPlanEvent = {
      entryId: event.entryId ?? "",
      namespace: event.namespace,
      id: event.id,
      type: event.type,
      occurredAt: event.occurredAt,
      ingestedAt: event.ingestedAt,
      data: event.data,
      routing,
      deliveries,
    };
    return [planned, routing, filtered];
  }
}
