import { readFileSync } from "node:fs";
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { z } from "zod";

/**
 * How both processes reach Redis: a URL, optionally an ACL user and password kept apart from it
 * (the chart reads them from a Secret), a CA for `rediss://`, Redis Sentinel, or Redis Cluster. One
 * definition so the operator and the dispatcher accept exactly the same settings.
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
    .transform((value, ctx) => parseHostPorts(value, ctx))
    .optional(),
  /** Name of the primary the Sentinels monitor. */
  redisSentinelMaster: z.string().min(1).default("mymaster"),
  /** Password of the Sentinels themselves, when they require one. */
  redisSentinelPassword: z.string().min(1).optional(),
  /**
   * `host:port[,…]` of some nodes of a Redis Cluster: the client learns the others and the slots
   * from them, follows MOVED/ASK redirections and retries TRYAGAIN during a slot migration.
   */
  redisClusterNodes: z
    .string()
    .transform((value, ctx) => parseHostPorts(value, ctx))
    .optional(),
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
    redisClusterNodes: `${prefix}_REDIS_CLUSTER_NODES`,
  } as const;
}

/** A client of one server (plain or through Sentinel) or of a Redis Cluster. */
export type RedisConnection = Redis | Cluster;

/**
 * A new client with these settings, of a Redis Cluster when they name its nodes, else of one
 * server; `options` are the caller's (timeouts, connection name…), for each node's connection on a
 * Cluster.
 */
export function connectRedisClient(
  settings: RedisConnectionSettings,
  options: RedisOptions = {},
): RedisConnection {
  if (settings.redisClusterNodes) {
    const tls = settings.redisTlsCaFile ? { ca: readFileSync(settings.redisTlsCaFile) } : undefined;
    const credentials: RedisOptions = {
      ...(settings.redisUsername ? { username: settings.redisUsername } : {}),
      ...(settings.redisPassword ? { password: settings.redisPassword } : {}),
    };
    const url = new URL(settings.redisUrl);
    return new Cluster(settings.redisClusterNodes, clusterOptions(url, options, credentials, tls));
  }
  return connectRedis(settings, options);
}

/** A new client of one server (the URL's, or the primary the Sentinels name); Cluster nodes are ignored. */
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
 * A Cluster client: the per-node options go to every node's connection (the URL gives only the
 * scheme and credentials: a Cluster has database 0 only); queueing, lazy connection and
 * auto-pipelining are the Cluster's own. During a slot migration Redis answers TRYAGAIN to a
 * multi-key command whose keys are split between the nodes: retried every 100 ms, up to 50 times.
 */
function clusterOptions(
  url: URL,
  options: RedisOptions,
  credentials: RedisOptions,
  tls: { ca: Buffer } | undefined,
): ClusterOptions {
  const { lazyConnect, enableOfflineQueue, enableAutoPipelining, ...perNode } = options;
  const useTls = url.protocol === "rediss:";
  const urlCredentials: RedisOptions = {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
  return {
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    redisOptions: { ...perNode, ...urlCredentials, ...credentials, ...(useTls ? { tls: tls ?? {} } : {}) },
    retryDelayOnTryAgain: 100,
    maxRedirections: 50,
    clusterRetryStrategy: (attempt) => sentinelRetryDelay(attempt),
  };
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
export async function closeRedis(client: RedisConnection): Promise<void> {
  await client.quit().catch(() => undefined);
  client.disconnect();
}

function parseHostPorts(value: string, ctx: z.RefinementCtx): Array<{ host: string; port: number }> {
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
