import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { uniqueKeyTag } from "../test/support/fixtures.ts";
import {
  type EndpointHealth,
  forgetEndpointHealth,
  readEndpointHealth,
  reportEndpointHealth,
} from "./endpoint-health.ts";
import { keyspace } from "./keys.ts";

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

const failing = (uid: string, firstFailureAt: number, updatedAt: number): EndpointHealth => ({
  uid,
  state: "CircuitOpen",
  consecutiveFailures: 5,
  failureRatio: 1,
  windowAttempts: 5,
  firstFailureAt,
  lastFailureAt: updatedAt,
  lastFailureReason: "HTTP 503",
  nextProbeAt: updatedAt + 30_000,
  updatedAt,
});

describe("endpoint health in Redis", () => {
  it("keeps the earliest start of a run of failures that several replicas report, and ends it on a success", async () => {
    const keys = keyspace(uniqueKeyTag());
    const field = "team-a/orders";
    const now = 1_764_500_000_000;
    // replica A saw the first failure; replica B, started later, reports a later one
    await reportEndpointHealth(redis, keys, [{ field, health: failing("u1", now, now + 1_000) }]);
    await reportEndpointHealth(redis, keys, [{ field, health: failing("u1", now + 60_000, now + 61_000) }]);
    expect((await readEndpointHealth(redis, keys)).get(field)).toEqual(failing("u1", now, now + 61_000));

    // a webhook made again (another uid) starts its own run
    await reportEndpointHealth(redis, keys, [{ field, health: failing("u2", now + 90_000, now + 91_000) }]);
    expect((await readEndpointHealth(redis, keys)).get(field)?.firstFailureAt).toBe(now + 90_000);

    const healthy: EndpointHealth = {
      uid: "u2",
      state: "Degraded",
      consecutiveFailures: 0,
      failureRatio: 0.5,
      windowAttempts: 2,
      lastFailureAt: now + 91_000,
      lastFailureReason: "timeout",
      updatedAt: now + 92_000,
    };
    await reportEndpointHealth(redis, keys, [{ field, health: healthy }]);
    await reportEndpointHealth(redis, keys, [{ field, health: failing("u2", now + 95_000, now + 96_000) }]);
    // the success ended the earlier run: the new one starts at its own first failure
    expect((await readEndpointHealth(redis, keys)).get(field)?.firstFailureAt).toBe(now + 95_000);

    // replica B succeeded at +100 s; replica A, which saw no success since +95 s, reports its old
    // run again: it cannot have started before B's success, which the record keeps
    await reportEndpointHealth(redis, keys, [
      { field, health: { ...healthy, lastSuccessAt: now + 100_000, updatedAt: now + 100_000 } },
    ]);
    await reportEndpointHealth(redis, keys, [{ field, health: failing("u2", now + 95_000, now + 120_000) }]);
    expect((await readEndpointHealth(redis, keys)).get(field)).toMatchObject({
      firstFailureAt: now + 100_000,
      lastSuccessAt: now + 100_000,
      lastFailureAt: now + 120_000,
    });

    await redis.hset(keys.endpointHealth, "team-a/garbled", "{not json");
    expect([...(await readEndpointHealth(redis, keys)).keys()]).toEqual([field]);
    await forgetEndpointHealth(redis, keys, [field, "team-a/garbled"]);
    expect(await redis.exists(keys.endpointHealth)).toBe(0);
  });
});
