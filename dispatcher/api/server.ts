import Fastify, { type FastifyError, LogController } from "fastify";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Keyspace } from "../../contract/keys.ts";
import type { RecordLimits } from "../../contract/record-limits.ts";
import type { Fanout } from "../fanout/fanout.ts";
import type { Metrics } from "../metrics.ts";
import { deliveriesRoutes } from "./deliveries-routes.ts";
import { ApiError, fromFastifyError } from "./errors.ts";
import { eventsRoutes } from "./events-routes.ts";
import { healthRoutes } from "./health-routes.ts";

export interface ApiOptions {
  redis: Redis;
  keys: Keyspace;
  metrics: Metrics;
  logger: Logger;
  limits: RecordLimits;
  fanout: Fanout;
  ingestTokens: readonly string[];
  adminTokens: readonly string[];
  maxEventBytes: number;
  maxBatchEvents: number;
  /** Configuration loaded and not shutting down (Redis reachability is checked per probe). */
  ready(): boolean;
}

export async function buildApi(options: ApiOptions) {
  const app = Fastify({
    loggerInstance: options.logger,
    // one line per request would dominate the logs of a high-volume ingest; errors are logged
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16 * 1024 * 1024,
    return503OnClosing: true,
  });

  // JSON only: anything else is answered 415 rather than parsed as text and rejected as invalid
  app.removeContentTypeParser("text/plain");

  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    const apiError = error instanceof ApiError ? error : fromFastifyError(error);
    if (apiError.code === "INTERNAL") request.log.error({ err: error, url: request.url }, "request failed");
    return reply.code(apiError.statusCode).send(apiError.toBody());
  });
  app.setNotFoundHandler((_request, reply) => {
    const error = new ApiError("NOT_FOUND");
    return reply.code(error.statusCode).send(error.toBody());
  });

  await app.register(healthRoutes, { redis: options.redis, metrics: options.metrics, ready: options.ready });
  await app.register(eventsRoutes, options);
  await app.register(deliveriesRoutes, options);
  return app;
}
