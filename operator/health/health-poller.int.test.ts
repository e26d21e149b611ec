import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type EndpointHealth, reportEndpointHealth } from "../../contract/endpoint-health.ts";
import { keyspace } from "../../contract/keys.ts";
import { uniqueKeyTag } from "../../test/support/fixtures.ts";
import { EndpointHealthPoller } from "./health-poller.ts";

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

const record = (overrides: Partial<EndpointHealth>): EndpointHealth => ({
  uid: "uid-orders",
  state: "Degraded",
  consecutiveFailures: 1,
  failureRatio: 0.05,
  windowAttempts: 20,
  firstFailureAt: 1_000,
  lastFailureAt: 1_000,
  lastFailureReason: "timeout",
  updatedAt: 1_000,
  ...overrides,
});

describe("EndpointHealthPoller (real Redis)", () => {
  it("wakes a webhook at once on a new state, throttles other changes, ignores another uid's record and drops deleted webhooks' records", async () => {
    const keys = keyspace(uniqueKeyTag());
    const webhooks = new Map([["team-a/orders", "uid-orders"]]);
    const woken: string[] = [];
    const poller = new EndpointHealthPoller({
      redis,
      keys,
      enqueue: (key) => woken.push(key),
      webhookUid: (namespace, name) => webhooks.get(`${namespace}/${name}`),
      watches: (namespace) => namespace === "team-a",
      logger: pino({ enabled: false }),
      minWriteMs: 30_000,
    });
    expect(poller.loaded).toBe(false);
    await reportEndpointHealth(redis, keys, [
      { field: "team-a/orders", health: record({}) },
      { field: "team-a/deleted", health: record({ uid: "gone" }) },
      { field: "team-b/other", health: record({ uid: "elsewhere" }) }, // not this operator's
    ]);
    await poller.poll(100_000);
    expect(poller.loaded).toBe(true);
    expect(woken).toEqual(["team-a/orders"]);
    expect(poller.get("team-a/orders", "uid-orders")?.lastFailureReason).toBe("timeout");
    expect(poller.get("team-a/orders", "another-uid")).toBeUndefined();
    expect(Object.keys(await redis.hgetall(keys.endpointHealth)).sort()).toEqual([
      "team-a/orders",
      "team-b/other",
    ]);

    // more failures, same state: not before 30 s since the last wake-up
    await reportEndpointHealth(redis, keys, [
      { field: "team-a/orders", health: record({ consecutiveFailures: 2, lastFailureAt: 2_000 }) },
    ]);
    await poller.poll(110_000);
    expect(woken).toHaveLength(1);
    await poller.poll(131_000);
    expect(woken).toHaveLength(2);
    expect(poller.get("team-a/orders", "uid-orders")?.consecutiveFailures).toBe(2);

    // the circuit opened: at once
    await reportEndpointHealth(redis, keys, [
      { field: "team-a/orders", health: record({ state: "CircuitOpen", consecutiveFailures: 5 }) },
    ]);
    await poller.poll(132_000);
    expect(woken).toHaveLength(3);
    // nothing new: nothing woken
    await poller.poll(200_000);
    expect(woken).toHaveLength(3);
  });
});
