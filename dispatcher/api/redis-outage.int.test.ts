import { afterEach, describe, expect, it } from "vitest";
import { startRedis, type TestRedis } from "../../test/env/redis.ts";
import { api, testSettings } from "../../test/support/fixtures.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher.ts";

// A throwaway redis-server of its own: the test stops it.

let redisServer: TestRedis | undefined;
let dispatcher: Dispatcher | undefined;

afterEach(async () => {
  await redisServer?.stop();
  redisServer = undefined;
  // the replica cannot hand anything back without Redis: stop it with a short grace, unawaited beyond it
  const stopping = dispatcher?.stop();
  dispatcher = undefined;
  await Promise.race([stopping, new Promise((resolve) => setTimeout(resolve, 3_000))]);
});

describe("ingest while Redis is down", () => {
  it("answers 503 UNAVAILABLE within a few seconds instead of hanging", async () => {
    redisServer = await startRedis();
    dispatcher = await startDispatcher(testSettings(redisServer.url, { shutdownGraceMs: 200 }));
    const event = { type: "job.created", namespace: "outage", data: {} };
    expect((await api(dispatcher.url, "POST", "/v1/events", { ...event, id: "evt-up" })).status).toBe(202);

    await redisServer.stop();
    redisServer = undefined;
    const startedAt = Date.now();
    const response = await api(dispatcher.url, "POST", "/v1/events", { ...event, id: "evt-down" });
    expect(response).toMatchObject({ status: 503, body: { error: { code: "UNAVAILABLE" } } });
    expect(Date.now() - startedAt).toBeLessThan(6_000);
    const batch = await api(dispatcher.url, "POST", "/v1/events/batch", {
      events: [{ ...event, id: "evt-b" }],
    });
    expect(batch.status).toBe(503);
    expect((await fetch(`${dispatcher.url}/readyz`)).status).toBe(503);
  }, 30_000);
});
