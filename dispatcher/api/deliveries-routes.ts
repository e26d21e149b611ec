import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { RetryScope } from "../../contract/deliveries.ts";
import { InvalidCursorError } from "../../contract/delivery-log.ts";
import { EventTypeSchema } from "../../contract/event-types.ts";
import {
  listDeliveriesAcross,
  readDeliveryAcross,
  requestRetryAcross,
  retryFailedDeliveries,
} from "../../contract/partitioned-log.ts";
import type { Partitions } from "../../contract/partitions.ts";
import type { RecordLimits } from "../../contract/record-limits.ts";
import { DeliveryPhaseSchema } from "../../contract/records.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { ArchivedLog } from "../archive/archive-log.ts";
import { ArchiveUnavailableError } from "../archive/archive-store.ts";
import { USER_AGENT } from "../version.ts";
import { assertMayActIn, confinedNamespace, scopedAuth } from "./auth.ts";
import { ApiError, issuesOf } from "./errors.ts";
import { sentHeaders } from "./sent-headers.ts";

export interface DeliveriesRoutesOptions {
  redis: RedisClient;
  partitions: Partitions;
  limits: RecordLimits;
  adminTokens: readonly string[];
  /** The namespace whose own event log token has this digest (from the routing). */
  namespaceOfEventLogToken(digest: string): string | undefined;
  /** The names of a webhook's own request headers in the current routing (none when unknown). */
  webhookHeaderNames(namespace: string, webhook: string): readonly string[];
  /** The durable log store, when configured: list, show and retry read it too (archive/archive-log.ts). */
  archive?: ArchivedLog | undefined;
}

const FilterSchema = z.strictObject({
  namespace: z.string().min(1).optional(),
  webhook: z.string().min(1).optional(),
  eventType: EventTypeSchema.optional(),
});

const ListQuerySchema = FilterSchema.extend({
  phase: DeliveryPhaseSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).optional(),
});

const RetryTokenSchema = z.string().min(1).max(253);
const RetryBodySchema = z.strictObject({ token: RetryTokenSchema.optional() }).optional();
const BulkRetryBodySchema = FilterSchema.extend({
  token: RetryTokenSchema,
  /** How many FAILED deliveries to requeue at most in this call. */
  limit: z.int().min(1).max(5_000).default(1_000),
});

/**
 * The event log: list, show, retry one, retry by filter. The admin token sees every namespace; a
 * namespace's event log token sees its own only (another namespace's delivery does not exist for
 * it, and a filter naming another namespace is a 403).
 */
export async function deliveriesRoutes(
  app: FastifyInstance,
  options: DeliveriesRoutesOptions,
): Promise<void> {
  const { redis, partitions, limits, archive } = options;
  // onRequest: unauthenticated requests are refused before their body is even read
  app.addHook("onRequest", scopedAuth(options.adminTokens, options.namespaceOfEventLogToken));

  app.get("/v1/deliveries", async (request) => {
    const query = parse(ListQuerySchema, request.query);
    const { limit, cursor, ...requested } = query;
    const filter = confine(request, requested);
    const page = cursor === undefined ? { limit } : { limit, cursor };
    try {
      if (archive) return await fromArchive(() => archive.list(filter, page));
      return await listDeliveriesAcross(redis, filter, page, partitions);
    } catch (error) {
      if (error instanceof InvalidCursorError) throw new ApiError("INVALID_REQUEST", "invalid cursor");
      throw error;
    }
  });

  app.get<{ Params: { id: string } }>("/v1/deliveries/:id", async (request) => {
    const confined = confinedNamespace(request);
    const delivery = archive
      ? await fromArchive(() => archive.read(request.params.id, confined))
      : await readDeliveryAcross(redis, request.params.id, partitions);
    if (delivery === null || (confined !== undefined && delivery.namespace !== confined)) {
      throw new ApiError("DELIVERY_NOT_FOUND");
    }
    const extraHeaders = options.webhookHeaderNames(delivery.namespace, delivery.webhook);
    return { ...delivery, requestHeaders: sentHeaders(delivery, USER_AGENT, extraHeaders) };
  });

  app.post<{ Params: { id: string } }>("/v1/deliveries/:id/retry", async (request, reply) => {
    const body = parse(RetryBodySchema, request.body ?? undefined);
    const token = body?.token ?? randomUUID();
    const { outcome } = archive
      ? await fromArchive(() => archive.retry(request.params.id, token, retryScope(request)))
      : await requestRetryAcross(redis, request.params.id, token, partitions, limits, retryScope(request));
    switch (outcome) {
      case "not-found":
        throw new ApiError("DELIVERY_NOT_FOUND");
      case "not-failed":
        throw new ApiError("DELIVERY_NOT_FAILED");
      case "requeued":
        return reply.code(202).send({ id: request.params.id, outcome, token });
      case "already-honoured":
        return reply.code(200).send({ id: request.params.id, outcome, token });
    }
  });

  app.post("/v1/deliveries/retry", async (request, reply) => {
    const { token, limit, ...requested } = parse(BulkRetryBodySchema, request.body);
    const filter = confine(request, requested);
    const counts = archive
      ? await fromArchive(() => archive.retryFailed(filter, token, limit, retryScope(request)))
      : await retryFailedDeliveries(redis, filter, token, limit, partitions, limits, retryScope(request));
    return reply.code(202).send({ token, ...counts });
  });
}

/** A call that may read the durable log store: PostgreSQL down is a 503, as Redis down is (the caller retries). */
export async function fromArchive<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ArchiveUnavailableError)
      throw new ApiError("UNAVAILABLE", "the durable log store (PostgreSQL) is unavailable; retry later");
    throw error;
  }
}

/** The filter a namespace's token may use: its own namespace, named or not. */
function confine<Filter extends { namespace?: string | undefined }>(
  request: FastifyRequest,
  filter: Filter,
): Filter {
  if (filter.namespace !== undefined)
    assertMayActIn(request, filter.namespace, "reads the event log only of");
  const confined = confinedNamespace(request);
  return confined === undefined ? filter : { ...filter, namespace: confined };
}

/** The retry script's own check, as the second line of defence. */
function retryScope(request: FastifyRequest): RetryScope {
  const confined = confinedNamespace(request);
  return confined === undefined ? "any-namespace" : { namespace: confined };
}

function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const details = issuesOf(result.error);
    throw new ApiError(
      "INVALID_REQUEST",
      `the request is invalid: ${details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join("; ")}`,
      details,
    );
  }
  return result.data;
}
