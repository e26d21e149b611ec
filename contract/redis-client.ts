import { Cluster, type Redis } from "ioredis";

/**
 * A connection as both processes hold it: one Redis server (plain or found through Sentinel), or a
 * Redis Cluster. Every key an atomic step (a Lua script, a MULTI, a pipeline) touches lives in one
 * partition's hash tag (partitions.ts), hence in one slot: the same calls work on both.
 */
export type RedisClient = Redis | Cluster;

/** The masters of a Cluster (where scripts must be loaded), or the one server. */
export function primaries(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes("master") : [redis];
}
