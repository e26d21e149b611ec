import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { uniqueKeyTag } from "../../test/support/fixtures.ts";
import type { Webhook, WebhookIntegration } from "../api/v1alpha1/index.ts";
import type { Cache, OperatorCaches } from "../caches.ts";
import { RoutingGuard } from "./routing-guard.ts";

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

function cache<T>(items: T[]): Cache<T> {
  return { get: () => undefined, list: () => items };
}

function guardFor(keys: ReturnType<typeof keyspace>, rewrite: (namespace: string) => Promise<void>) {
  const caches: OperatorCaches = {
    integrations: cache([{ metadata: { name: "default", namespace: "a" } } as WebhookIntegration]),
    webhooks: cache([{ metadata: { name: "hook", namespace: "b" } } as Webhook]),
    events: cache([]),
    secrets: cache([]),
  };
  return new RoutingGuard({
    redis,
    keys,
    caches,
    rewrite,
    registry: new Registry(),
    logger: pino({ enabled: false }),
  });
}

describe("RoutingGuard", () => {
  it("adopts an epoch that is there; when it is gone, writes every namespace, then a new epoch", async () => {
    const keys = keyspace(uniqueKeyTag());
    await redis.set(keys.routingEpoch, "from-the-last-leader");
    const written: string[] = [];
    const guard = guardFor(keys, async (namespace) => {
      written.push(namespace);
      expect(await redis.get(keys.routingEpoch)).toBeNull(); // the epoch comes after the routing
    });
    expect(await guard.check()).toBe(false);
    expect(written).toEqual([]);

    await redis.del(keys.routingEpoch);
    expect(await guard.check()).toBe(true);
    expect(written.sort()).toEqual(["a", "b"]);
    expect(await redis.get(keys.routingEpoch)).not.toBeNull();
    expect(await guard.check()).toBe(false);
  });

  it("writes no epoch while a namespace could not be written (dispatchers keep refusing), and tries again", async () => {
    const keys = keyspace(uniqueKeyTag());
    let failing = true;
    const guard = guardFor(keys, async (namespace) => {
      if (failing && namespace === "b") throw new Error("API server unavailable");
    });
    await expect(guard.check()).rejects.toThrow(/1 namespace/);
    expect(await redis.get(keys.routingEpoch)).toBeNull();
    failing = false;
    expect(await guard.check()).toBe(true);
    expect(await redis.get(keys.routingEpoch)).not.toBeNull();
  });
});
