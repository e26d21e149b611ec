import type { FastifyInstance } from "fastify";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { Metrics } from "../metrics.ts";

export interface HealthRoutesOptions {
  redis: RedisClient;
  metrics: Metrics;
  ready(): boolean;
  /** Serve /metrics here too (false when it has a listener of its own). */
  serveMetrics: boolean;
}

const PING_TIMEOUT_MS = 1_000;

/** `/healthz` (the process serves), `/readyz` (Redis answers and routing is loaded), `/metrics`. */
export async function healthRoutes(app: FastifyInstance, options: HealthRoutesOptions): Promise<void> {
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    const checks = { redis: await redisAnswers(options.redis), configuration: options.ready() };
    const ready = checks.redis && checks.configuration;
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not-ready", checks });
  });

  if (options.serveMetrics) await metricsRoute(app, options);
}

/** `/metrics`, in the Prometheus text format. */
export async function metricsRoute(app: FastifyInstance, options: { metrics: Metrics }): Promise<void> {
  app.get("/metrics", async (_request, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(body);
  });
}

async function redisAnswers(redis: RedisClient): Promise<boolean> {
  if (redis.status !== "ready") return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const pong = await Promise.race([
      redis.ping(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("ping timed out")), PING_TIMEOUT_MS);
      }),
    ]);
    return pong === "PONG";
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
