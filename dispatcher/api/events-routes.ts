import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { readEventAcross } from "../../contract/partitioned-log.ts";
import type { Partitions } from "../../contract/partitions.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { ArchivedLog } from "../archive/archive-log.ts";
import { type Fanout, type IncomingEvent, RoutingNotLoadedError } from "../fanout/fanout.ts";
import {
  EventIdSchema,
  type IngestEvent,
  IngestEventSchema,
  NamespaceSchema,
} from "../ingest/event-schema.ts";
import type { Metrics } from "../metrics.ts";
import { assertMayActIn, confinedNamespace, scopedAuth } from "./auth.ts";
import { fromArchive } from "./deliveries-routes.ts";
import { ApiError, issuesOf } from "./errors.ts";

export interface EventsRoutesOptions {
  redis: RedisClient;
  partitions: Partitions;
  metrics: Metrics;
  fanout: Fanout;
  ingestTokens: readonly string[];
  adminTokens: readonly string[];
  /** The namespace whose own ingest token has this digest (from the routing). */
  namespaceOfIngestToken(digest: string): string | undefined;
  /** The namespace whose own event log token has this digest (from the routing). */
  namespaceOfEventLogToken(digest: string): string | undefined;
  maxEventBytes: number;
  maxBatchEvents: number;
  /** The durable log store, when configured: an event Redis no longer has is read from it. */
  archive?: ArchivedLog | undefined;
}

/** Ingest (`POST /v1/events`, `POST /v1/events/batch`) and `GET /v1/events/:namespace/:id`. */
export async function eventsRoutes(app: FastifyInstance, options: EventsRoutesOptions): Promise<void> {
  const { redis, partitions, metrics, fanout, maxEventBytes, maxBatchEvents, archive } = options;
  const authenticate = scopedAuth(options.ingestTokens, options.namespaceOfIngestToken);
  const BatchSchema = z.strictObject({
    events: z
      .array(z.unknown())
      .min(1, "at least one event")
      .max(maxBatchEvents, `at most ${maxBatchEvents} events`),
  });

  /** Validates one event and completes it (id, time); throws an ApiError with the reason. */
  function toIncomingEvent(body: unknown, path: string, ingestedAt: number): IncomingEvent {
    const parsed = IngestEventSchema.safeParse(body);
    if (!parsed.success) {
      metrics.eventsRejected.inc({ source: "api", reason: "invalid" });
      const details = issuesOf(parsed.error).map((issue) => ({
        ...issue,
        path: [path, issue.path].filter(Boolean).join("."),
      }));
      throw new ApiError(
        "INVALID_EVENT",
        `the event is invalid: ${details.map(describe).join("; ")}`,
        details,
      );
    }
    const event: IngestEvent = parsed.data;
    const data = JSON.stringify(event.data);
    if (Buffer.byteLength(data) > maxEventBytes) {
      metrics.eventsRejected.inc({ source: "api", reason: "too-large" });
      throw new ApiError(
        "PAYLOAD_TOO_LARGE",
        `${path ? `${path}.` : ""}data is larger than ${maxEventBytes} bytes`,
      );
    }
    return {
      type: event.type,
      namespace: event.namespace,
      id: event.id ?? randomUUID(),
      occurredAt: event.occurredAt ?? new Date(ingestedAt).toISOString(),
      data,
      ingestedAt,
    };
  }

  /** A namespace's own token publishes into that namespace only (403 NAMESPACE_FORBIDDEN). */
  function mayPublish(request: FastifyRequest, events: readonly IncomingEvent[]): void {
    try {
      for (const event of events) assertMayActIn(request, event.namespace, "publishes only into");
    } catch (error) {
      metrics.eventsRejected.inc({ source: "api", reason: "forbidden" }, events.length);
      throw error;
    }
  }

  /** Fans the events out at once: 202 means their deliveries exist. */
  async function ingest(events: IncomingEvent[]): Promise<Array<{ id: string; duplicate: boolean }>> {
    let duplicates: boolean[];
    try {
      duplicates = await fanout.record(events);
    } catch (error) {
      if (error instanceof RoutingNotLoadedError) {
        throw new ApiError("UNAVAILABLE", "the routing configuration is not loaded yet; retry later");
      }
      app.log.error({ err: error }, "ingest failed: RedisClient unavailable");
      throw new ApiError("UNAVAILABLE", "the event could not be stored; retry later");
    }
    return events.map((event, i) => {
      const duplicate = duplicates[i] === true;
      metrics.eventsIngested.inc({ result: duplicate ? "duplicate" : "accepted" });
      return { id: event.id, duplicate };
    });
  }

  app.post(
    "/v1/events",
    { onRequest: authenticate, bodyLimit: maxEventBytes + 16 * 1024 },
    async (request, reply) => {
      const event = toIncomingEvent(request.body, "", Date.now());
      mayPublish(request, [event]);
      const [result] = await ingest([event]);
      return reply.code(202).send(result);
    },
  );

  app.post(
    "/v1/events/batch",
    {
      onRequest: authenticate,
      bodyLimit: Math.min(maxBatchEvents * (maxEventBytes + 1024), 16 * 1024 * 1024),
    },
    async (request, reply) => {
      const batch = BatchSchema.safeParse(request.body);
      if (!batch.success) {
        metrics.eventsRejected.inc({ source: "api", reason: "invalid" });
        const details = issuesOf(batch.error);
        throw new ApiError(
          "INVALID_EVENT",
          `the batch is invalid: ${details.map(describe).join("; ")}`,
          details,
        );
      }
      const now = Date.now();
      const events = batch.data.events.map((event, i) => toIncomingEvent(event, `events.${i}`, now));
      mayPublish(request, events); // all or nothing, like the rest of the batch's checks
      return reply.code(202).send({ results: await ingest(events) });
    },
  );

  const EventParams = z.object({ namespace: NamespaceSchema, id: EventIdSchema });
  const logAuth = scopedAuth(options.adminTokens, options.namespaceOfEventLogToken);
  app.get("/v1/events/:namespace/:id", { onRequest: logAuth }, async (request) => {
    const params = EventParams.safeParse(request.params);
    if (!params.success) throw new ApiError("EVENT_NOT_FOUND");
    // another namespace's event does not exist for a namespace's token
    const confined = confinedNamespace(request);
    if (confined !== undefined && confined !== params.data.namespace) throw new ApiError("EVENT_NOT_FOUND");
    const { namespace, id } = params.data;
    const event = archive
      ? await fromArchive(() => archive.readEvent(namespace, id))
      : await readEventAcross(redis, namespace, id, partitions);
    if (event === null) throw new ApiError("EVENT_NOT_FOUND");
    return event;
  });
}

function describe(issue: { path: string; message: string }): string {
  return issue.path ? `${issue.path}: ${issue.message}` : issue.message;
}
