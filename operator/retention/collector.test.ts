import { pino } from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { WebhookEvent, WebhookIntegration } from "../api/v1alpha1/index.ts";
import type { ApiWrites } from "../api-writes.ts";
import type { Cache, OperatorCaches } from "../caches.ts";
import { RetentionCollector } from "./collector.ts";

function cache<T>(items: T[]): Cache<T> {
  return { get: () => undefined, list: () => items };
}

const event = (namespace: string, name: string, createdAt: string): WebhookEvent =>
  ({ metadata: { namespace, name, uid: `${name}-uid`, creationTimestamp: createdAt } }) as WebhookEvent;

const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

describe("RetentionCollector.sweep", () => {
  it("skips an object re-created since the cache saw it (409) and goes on; a failure ends one namespace only", async () => {
    const old = "2020-01-01T00:00:00Z";
    const events = [
      event("a", "a-1", old),
      event("a", "a-recreated", old),
      event("a", "a-3", old),
      event("b", "b-1", old),
      event("b", "b-2", old),
      event("c", "c-1", old),
    ];
    const deleted: string[] = [];
    const writes = {
      delete: async (_type: unknown, target: { name: string }) => {
        if (target.name === "a-recreated") throw apiError(409);
        if (target.name === "b-1") throw apiError(500);
        deleted.push(target.name);
      },
    } as unknown as ApiWrites;
    const caches: OperatorCaches = {
      integrations: cache<WebhookIntegration>([]),
      webhooks: cache([]),
      events: cache(events),
      secrets: cache([]),
    };
    const collector = new RetentionCollector({
      caches,
      writes,
      limiter: { take: async () => {} },
      registry: new Registry(),
      logger: pino({ enabled: false }),
      intervalMs: 60_000,
    });
    collector.start(); // sweeps run while leading (the timer's first one is a minute away)
    try {
      expect(await collector.sweep(Date.parse("2026-01-01T00:00:00Z"))).toBe(3);
    } finally {
      await collector.stop();
    }
    expect(deleted).toEqual(["a-1", "a-3", "c-1"]);
  });
});
