import { readFileSync } from "node:fs";
import { Redis, type RedisOptions } from "ioredis";
import { z } from "zod";

/**
 * How both processes reach Redis: a URL, optionally an ACL user and password kept apart from it
 * (the chart reads them from a Secret), a CA for `rediss://`, or Redis Sentinel. One definition
 * so the operator and the dispatcher accept exactly the same settings.
 */
export const RedisConnectionFields = {
  /** `redis://[user:password@]host:port/db`, or `rediss://` for TLS. Ignored for the host when Sentinel is used. */
  redisUrl: z
    .url({ protocol: /^rediss?$/, error: "a redis:// or rediss:// URL" })
    .default("redis://127.0.0.1:6379"),
  /** ACL user name; overrides one in the URL. */
  redisUsername: z.string().min(1).optional(),
  /** Password (of the ACL user, or `requirepass`); overrides one in the URL. */
  redisPassword: z.string().min(1).optional(),
  /** PEM file of the CA that signed the server's certificate (`rediss://` or Sentinel with TLS). */
  redisTlsCaFile: z.string().min(1).optional(),
  /** `host:port[,…]` of Redis Sentinels: the primary is asked from them and followed on failover. */
  redisSentinels: z
    .string()
    .transform((value, ctx) => parseSentinels(value, ctx))
    .optional(),
  /** Name of the primary the Sentinels monitor. */
  redisSentinelMaster: z.string().min(1).default("mymaster"),
  /** Password of the Sentinels themselves, when they require one. */
  redisSentinelPassword: z.string().min(1).optional(),
};

export const RedisConnectionSchema = z.object(RedisConnectionFields);
export type RedisConnectionSettings = z.output<typeof RedisConnectionSchema>;

/** The environment variable of each connection setting, for a process whose variables start with `prefix`. */
export function redisEnvironment<Prefix extends string>(prefix: Prefix) {
  return {
    redisUrl: `${prefix}_REDIS_URL`,
    redisUsername: `${prefix}_REDIS_USERNAME`,
    redisPassword: `${prefix}_REDIS_PASSWORD`,
    redisTlsCaFile: `${prefix}_REDIS_TLS_CA_FILE`,
    redisSentinels: `${prefix}_REDIS_SENTINELS`,
    redisSentinelMaster: `${prefix}_REDIS_SENTINEL_MASTER`,
    redisSentinelPassword: `${prefix}_REDIS_SENTINEL_PASSWORD`,
  } as const;
}

/** A new client with these settings; `options` are the caller's (timeouts, connection name…). */
export function connectRedis(settings: RedisConnectionSettings, options: RedisOptions = {}): Redis {
  const tls = settings.redisTlsCaFile ? { ca: readFileSync(settings.redisTlsCaFile) } : undefined;
  const credentials: RedisOptions = {
    ...(settings.redisUsername ? { username: settings.redisUsername } : {}),
    ...(settings.redisPassword ? { password: settings.redisPassword } : {}),
  };
  // ioredis lets the URL's credentials win over options: drop the ones given apart
  const url = new URL(settings.redisUrl);
  if (settings.redisUsername) url.username = "";
  if (settings.redisPassword) url.password = "";
  if (settings.redisSentinels) {
    const useTls = url.protocol === "rediss:";
    return new Redis(url.href, {
      ...options,
      ...credentials,
      sentinels: settings.redisSentinels,
      name: settings.redisSentinelMaster,
      ...(settings.redisSentinelPassword ? { sentinelPassword: settings.redisSentinelPassword } : {}),
      ...(useTls ? { enableTLSForSentinelMode: true, tls: tls ?? {}, sentinelTLS: tls ?? {} } : {}),
      // a demoted primary answers writes with READONLY until the connection moves: move at once
      reconnectOnError: (error) => error.message.startsWith("READONLY"),
      failoverDetector: true,
      retryStrategy: options.retryStrategy ?? sentinelRetryDelay,
    });
  }
  return new Redis(url.href, { ...options, ...credentials, ...(tls ? { tls } : {}) });
}

/**
 * Reconnect delay while the primary is unreachable under Sentinel. A failover is expected there,
 * and each attempt first asks a Sentinel where the primary is now: retry at least every second so
 * work resumes soon after a promotion. ioredis' default backs off to 5 s; after a 2.3 s failover
 * it took ingest 1.7–1.8 s past the promotion to resume, with this 0.5–0.95 s
 * (test/faults/sentinel-failover.int.test.ts). The jitter spreads the replicas' attempts.
 */
export function sentinelRetryDelay(attempt: number): number {
  return Math.min(50 * 2 ** (attempt - 1), 1_000) + Math.floor(Math.random() * 100);
}

/**
 * Closes a client: pending replies first (QUIT), then the Sentinel subscriptions of its failover
 * detector, which `quit()` leaves open and reconnecting (ioredis issue #1362) while `disconnect()`
 * closes them.
 */
export async function closeRedis(client: Redis): Promise<void> {
  await client.quit().catch(() => undefined);
  client.disconnect();
}

function parseSentinels(value: string, ctx: z.RefinementCtx): Array<{ host: string; port: number }> {
  const sentinels: Array<{ host: string; port: number }> = [];
  for (const item of value.split(",").map((entry) => entry.trim())) {
    if (item === "") continue;
    const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(item);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65_535) {
      ctx.addIssue({ code: "custom", message: `expected host:port, got ${JSON.stringify(item)}` });
      return [];
    }
    sentinels.push({ host: match[1]!.replace(/^\[|\]$/g, ""), port });
  }
  if (sentinels.length === 0) ctx.addIssue({ code: "custom", message: "at least one host:port" });
  return sentinels;
}
