import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest, LogController } from "fastify";
import type { Logger } from "pino";
import type { Partitions } from "../../contract/partitions.ts";
import type { RecordLimits } from "../../contract/record-limits.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { ArchivedLog } from "../archive/archive-log.ts";
import type { Fanout } from "../fanout/fanout.ts";
import type { Metrics } from "../metrics.ts";
import { consoleRoutes } from "./console-routes.ts";
import { deliveriesRoutes } from "./deliveries-routes.ts";
import { ApiError, fromFastifyError } from "./errors.ts";
import { eventsRoutes } from "./events-routes.ts";
import { healthRoutes, metricsRoute } from "./health-routes.ts";
import { exceedsJsonDepth } from "./json-depth.ts";

export interface ApiOptions {
  redis: RedisClient;
  /** the keyspace's partitions (one, unless configured) */
  partitions: Partitions;
  metrics: Metrics;
  logger: Logger;
  limits: RecordLimits;
  fanout: Fanout;
  /** The durable log store's view of the event log, when one is configured. */
  archive?: ArchivedLog | undefined;
  ingestTokens: readonly string[];
  /** The namespace whose own ingest token has this digest (from the routing). */
  namespaceOfIngestToken(digest: string): string | undefined;
  /** The namespace whose own event log token has this digest (from the routing). */
  namespaceOfEventLogToken(digest: string): string | undefined;
  /** The names of a webhook's own request headers in the current routing (none when unknown). */
  webhookHeaderNames(namespace: string, webhook: string): readonly string[];
  adminTokens: readonly string[];
  maxEventBytes: number;
  maxBatchEvents: number;
  /** Configuration loaded and not shutting down (Redis reachability is checked per probe). */
  ready(): boolean;
  /** Serve /metrics on the API port (false when it has a listener of its own). */
  serveMetrics: boolean;
  /** The built event log console, served at /console/. */
  consoleDir: URL;
}

/**
 * Largest body of any route that does not set its own (the ingest routes do): a request to any
 * other path is answered 413 from its Content-Length, before a byte of its body is read.
 */
export const DEFAULT_BODY_LIMIT = 64 * 1024;
/** Deepest nesting of objects and arrays accepted in a JSON body (an event's data included). */
export const MAX_JSON_DEPTH = 32;

export async function buildApi(options: ApiOptions) {
  const app = Fastify({
    loggerInstance: options.logger,
    // one line per request would dominate the logs of a high-volume ingest; errors are logged
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: DEFAULT_BODY_LIMIT,
    return503OnClosing: true,
  });

  // JSON only: anything else is answered 415 rather than parsed as text and rejected as invalid
  app.removeContentTypeParser("text/plain");
  // JSON nested too deep is refused before it is parsed (it would overflow validation's stack)
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) {
      const code = request.url.startsWith("/v1/events") ? "INVALID_EVENT" : "INVALID_REQUEST";
      done(new ApiError(code, `the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`), undefined);
      return;
    }
    parseJson(request, text, done);
  });

  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    const apiError = error instanceof ApiError ? error : fromFastifyError(error);
    if (apiError.code === "INTERNAL") request.log.error({ err: error, url: request.url }, "request failed");
    closeIfBodyUnread(request, reply);
    return reply.code(apiError.statusCode).send(apiError.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError("NOT_FOUND");
    closeIfBodyUnread(request, reply);
    return reply.code(error.statusCode).send(error.toBody());
  });

  await app.register(healthRoutes, {
    redis: options.redis,
    metrics: options.metrics,
    ready: options.ready,
    serveMetrics: options.serveMetrics,
  });
  await app.register(eventsRoutes, options);
  await app.register(deliveriesRoutes, options);
  await app.register(consoleRoutes, { assetsDir: options.consoleDir });
  return app;
}

/**
 * Answered before its body arrived (refused in onRequest, or by its Content-Length): close the
 * connection after the answer instead of keeping it alive, which would make Node read and discard
 * the rest of the body (megabytes from an unauthenticated client).
 */
function closeIfBodyUnread(request: FastifyRequest, reply: FastifyReply): void {
  if (!request.raw.complete) reply.header("connection", "close");
}

/** A listener of its own for /metrics, so that the API port exposes no operational data. */
export async function buildMetricsServer(options: { metrics: Metrics; logger: Logger }) {
  const app = Fastify({
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024,
  });
  await app.register(metricsRoute, { metrics: options.metrics });
  return app;
}
