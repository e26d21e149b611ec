import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { ATTEMPT_ERROR_CODES, FAILURE_REASONS } from "../contract/records.ts";

/** Label values are bounded by construction: codes, phases, reasons and stream names only. */
export type AttemptOutcome = "success" | (typeof ATTEMPT_ERROR_CODES)[number];

export interface QueueSnapshot {
  streams: Record<"events" | "deliveries" | "status", { length: number; pending: number }>;
  scheduled: number;
  /** ordered webhooks with deliveries in their queue, and those deliveries (heads included) */
  ordered: { queues: number; deliveries: number };
}

const PREFIX = "dataforce_dispatcher_";

/** One registry per dispatcher instance (tests run several in one process). */
export function createMetrics(queueSnapshot: () => Promise<QueueSnapshot | null>) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const eventsIngested = new Counter({
    name: `${PREFIX}events_ingested_total`,
    help: "Events accepted by the ingest API, by whether they were new or a repeated id.",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const eventsRejected = new Counter({
    name: `${PREFIX}events_rejected_total`,
    help: "Events refused by the ingest API (invalid, too-large, forbidden) or moved from the ingest stream to the dead letters (invalid, too-large, fanout-failed).",
    labelNames: ["source", "reason"] as const,
    registers: [registry],
  });
  const eventsRouted = new Counter({
    name: `${PREFIX}events_fanned_out_total`,
    help: "Ingested events fanned out, by routing result (routed, no-subscribers, filtered, integration-*, duplicate).",
    labelNames: ["routing"] as const,
    registers: [registry],
  });
  const deliveriesCreated = new Counter({
    name: `${PREFIX}deliveries_created_total`,
    help: "Delivery records created by fan-out.",
    registers: [registry],
  });
  const deliveriesFiltered = new Counter({
    name: `${PREFIX}deliveries_filtered_total`,
    help: "Deliveries not created because the webhook's filter said no (no-match), failed on the event (error) or ran over its budget (limit).",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  for (const reason of ["no-match", "error", "limit"]) deliveriesFiltered.inc({ reason }, 0);
  const deliveriesCompleted = new Counter({
    name: `${PREFIX}deliveries_completed_total`,
    help: "Deliveries that reached a final phase, by phase and (for FAILED) reason.",
    labelNames: ["phase", "reason"] as const,
    registers: [registry],
  });
  const attempts = new Counter({
    name: `${PREFIX}delivery_attempts_total`,
    help: "Delivery attempts by outcome (success or an attempt error code).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const attemptDuration = new Histogram({
    name: `${PREFIX}delivery_attempt_duration_seconds`,
    help: "Duration of delivery attempts (request sent to response headers or error).",
    labelNames: ["outcome"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const ingestToSent = new Histogram({
    name: `${PREFIX}delivery_ingest_to_sent_seconds`,
    help: "Time from ingest to the successful attempt's response, retries included.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300, 3600],
    registers: [registry],
  });
  const deferred = new Counter({
    name: `${PREFIX}deliveries_deferred_total`,
    help: "Work handed back to the shared schedule without an attempt (endpoint busy or slow, shutdown).",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const lost = new Counter({
    name: `${PREFIX}deliveries_lost_total`,
    help: "Work whose delivery record had vanished from Redis (data loss): when read, or when its attempt's outcome was to be recorded (the receiver may have got it).",
    labelNames: ["at"] as const,
    registers: [registry],
  });
  for (const at of ["read", "settle"]) lost.inc({ at }, 0);
  const claimed = new Counter({
    name: `${PREFIX}stream_entries_claimed_total`,
    help: "Entries taken over from consumers that stopped acknowledging (crashed or stuck).",
    labelNames: ["stream"] as const,
    registers: [registry],
  });
  // the delivery worker's load, read when scraped rather than updated per attempt
  let load: () => { inFlight: number; buffered: number } = () => ({ inFlight: 0, buffered: 0 });
  new Gauge({
    name: `${PREFIX}deliveries_in_flight`,
    help: "Delivery attempts in flight in this replica.",
    registers: [registry],
    collect() {
      this.set(load().inFlight);
    },
  });
  new Gauge({
    name: `${PREFIX}deliveries_buffered`,
    help: "Work items held by this replica (queued per endpoint plus in flight).",
    registers: [registry],
    collect() {
      this.set(load().buffered);
    },
  });
  const routingRevision = new Gauge({
    name: `${PREFIX}routing_revision`,
    help: "The routing configuration revision this replica applies.",
    registers: [registry],
  });
  const routingNamespaces = new Gauge({
    name: `${PREFIX}routing_namespaces`,
    help: "Namespaces in the routing configuration, by validity.",
    labelNames: ["state"] as const,
    registers: [registry],
  });
  const redisErrors = new Counter({
    name: `${PREFIX}redis_errors_total`,
    help: "Failed Redis operations of the background loops (they retry).",
    labelNames: ["loop"] as const,
    registers: [registry],
  });

  // the durable log store (archive/): set by the archiver's rounds, zero without a store
  const archiveBacklog = new Gauge({
    name: `${PREFIX}archive_backlog`,
    help: "Completed deliveries in Redis not yet written to the durable log store (Postgres).",
    registers: [registry],
  });
  const deliveriesArchived = new Counter({
    name: `${PREFIX}deliveries_archived_total`,
    help: "Completed deliveries written to the durable log store.",
    registers: [registry],
  });
  const archiveErrors = new Counter({
    name: `${PREFIX}archive_errors_total`,
    help: "Failed archiver steps (Postgres or Redis unreachable; the deliveries stay in Redis and the next round retries), and requests given up on a row the store cannot read.",
    registers: [registry],
  });
  const archiveSkipped = new Counter({
    name: `${PREFIX}archive_skipped_total`,
    help: "Completed deliveries that could not be archived: their event record (payload) was gone from Redis.",
    registers: [registry],
  });
  const archiveWriteDuration = new Histogram({
    name: `${PREFIX}archive_write_duration_seconds`,
    help: "Duration of one batch upsert into the durable log store.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  // Queue depth is shared state in Redis: read it when scraped (one pipeline for all three).
  let snapshot: Promise<QueueSnapshot | null> | undefined;
  const readSnapshot = () => {
    snapshot ??= queueSnapshot().finally(() => {
      snapshot = undefined;
    });
    return snapshot;
  };
  new Gauge({
    name: `${PREFIX}stream_length`,
    help: "Entries in the dispatcher's Redis streams.",
    labelNames: ["stream"] as const,
    registers: [registry],
    async collect() {
      const current = await readSnapshot();
      if (current === null) return;
      for (const [stream, { length }] of Object.entries(current.streams)) this.set({ stream }, length);
    },
  });
  new Gauge({
    name: `${PREFIX}stream_pending`,
    help: "Entries read by a dispatcher but not yet acknowledged.",
    labelNames: ["stream"] as const,
    registers: [registry],
    async collect() {
      const current = await readSnapshot();
      if (current === null) return;
      for (const stream of ["events", "deliveries"] as const)
        this.set({ stream }, current.streams[stream].pending);
    },
  });
  new Gauge({
    name: `${PREFIX}scheduled_retries`,
    help: "Deliveries waiting for a later attempt.",
    registers: [registry],
    async collect() {
      const current = await readSnapshot();
      if (current !== null) this.set(current.scheduled);
    },
  });

  new Gauge({
    name: `${PREFIX}ordered_queues`,
    help: "Ordered webhooks (spec.ordering: Ordered) with deliveries queued.",
    registers: [registry],
    async collect() {
      const current = await readSnapshot();
      if (current !== null) this.set(current.ordered.queues);
    },
  });
  new Gauge({
    name: `${PREFIX}ordered_queue_deliveries`,
    help: "Deliveries in the queues of ordered webhooks, each queue's head (being attempted) included.",
    registers: [registry],
    async collect() {
      const current = await readSnapshot();
      if (current !== null) this.set(current.ordered.deliveries);
    },
  });

  for (const outcome of ["success", ...ATTEMPT_ERROR_CODES]) attempts.inc({ outcome }, 0);
  // ingest entries whose fan-out kept failing: rare, and worth an alert from the first one
  eventsRejected.inc({ source: "stream", reason: "fanout-failed" }, 0);
  deliveriesCompleted.inc({ phase: "SENT", reason: "" }, 0);
  for (const reason of FAILURE_REASONS) deliveriesCompleted.inc({ phase: "FAILED", reason }, 0);

  return {
    registry,
    eventsIngested,
    eventsRejected,
    eventsRouted,
    deliveriesCreated,
    deliveriesFiltered,
    deliveriesCompleted,
    attempts,
    attemptDuration,
    ingestToSent,
    deferred,
    lost,
    claimed,
    observeLoad(source: () => { inFlight: number; buffered: number }) {
      load = source;
    },
    routingRevision,
    routingNamespaces,
    redisErrors,
    archiveBacklog,
    deliveriesArchived,
    archiveErrors,
    archiveSkipped,
    archiveWriteDuration,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Reports a failed step of a background loop (`loop` is the label value, e.g. `delivery-read`):
 * counted in redis_errors_total and logged; the loop itself retries.
 */
export function loopErrorReporter(
  metrics: Pick<Metrics, "redisErrors">,
  logger: { warn(fields: object, message: string): void },
): (error: unknown, loop: string) => void {
  return (error, loop) => {
    metrics.redisErrors.inc({ loop });
    logger.warn({ err: error, loop }, "a Redis step failed; retrying");
  };
}
