import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { TEST_SECRET_BOX, testRouting, testSettings } from "../../test/support/fixtures.ts";
import { startDispatcher } from "../dispatcher.ts";

const redis = new Redis(inject("redisUrl"));
afterAll(() => redis.disconnect());

describe("DISPATCHER_METRICS_PORT", () => {
  it("serves /metrics on its own listener and not on the API port", async () => {
    const settings = testSettings(inject("redisUrl"), { metricsPort: 0 });
    await writeNamespaceRouting(redis, testRouting("team-a", []), keyspace(settings.keyTag), TEST_SECRET_BOX);
    const dispatcher = await startDispatcher(settings);
    try {
      expect(dispatcher.metricsUrl).toBeDefined();
      expect(dispatcher.metricsUrl).not.toBe(dispatcher.url);
      const own = await fetch(`${dispatcher.metricsUrl}/metrics`);
      expect(own.status).toBe(200);
      expect(await own.text()).toContain("dataforce_dispatcher_");
      expect((await fetch(`${dispatcher.url}/metrics`)).status).toBe(404);
      expect((await fetch(`${dispatcher.metricsUrl}/healthz`)).status).toBe(404);
      expect((await fetch(`${dispatcher.url}/healthz`)).status).toBe(200);
    } finally {
      await dispatcher.stop();
    }
  });

  it("leaves /metrics on the API port when unset (local development)", async () => {
    const dispatcher = await startDispatcher(testSettings(inject("redisUrl")));
    try {
      expect(dispatcher.metricsUrl).toBeUndefined();
      expect((await fetch(`${dispatcher.url}/metrics`)).status).toBe(200);
    } finally {
      await dispatcher.stop();
    }
  });
});
