import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { readDelivery } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import { api, eventually, routeNamespaces, testRouting, testSettings } from "../../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../../test/support/receiver.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher.ts";

// A slow endpoint (every request hangs until the 1 s timeout) with a backlog several times the
// dispatcher's buffer, and a healthy endpoint on another origin: the healthy one's deliveries
// must keep their latency. Without isolation the buffer fills with slow work and healthy
// deliveries wait behind it for (backlog / concurrency) × timeout ≈ 40 s.

let redis: Redis;
let slow: Receiver;
let healthy: Receiver;
let dispatcher: Dispatcher;

const SLOW_BACKLOG = 160;
const HEALTHY_EVENTS = 40;

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  slow = await startReceiver();
  healthy = await startReceiver();
  slow.on("*", { kind: "hang" });
  dispatcher = await startDispatcher(
    testSettings(inject("redisUrl"), {
      endpointConcurrency: 4,
      maxBuffered: 48,
      maxInFlight: 32,
      endpointMaxQueueWaitMs: 300,
      shutdownGraceMs: 200,
    }),
  );
  await routeNamespaces(redis, dispatcher, [
    testRouting(
      "iso",
      [
        { name: "slow", event: "job.created", url: slow.url("/slow") },
        { name: "healthy", event: "job.updated", url: healthy.url("/healthy") },
      ],
      { delivery: { maxAttempts: 1, timeoutMs: 1_000 } },
    ),
  ]);
});
afterAll(async () => {
  await dispatcher.stop();
  await Promise.all([slow.close(), healthy.close()]);
  redis.disconnect();
});

describe("endpoint isolation", () => {
  it("keeps a healthy endpoint's latency while a slow endpoint hangs with a large backlog", async () => {
    const backlog = Array.from({ length: SLOW_BACKLOG }, (_, i) => ({
      type: "job.created",
      namespace: "iso",
      id: `slow-${i}`,
      data: { i },
    }));
    expect((await api(dispatcher.url, "POST", "/v1/events/batch", { events: backlog })).status).toBe(202);
    await slow.waitForRequests(4, "/slow"); // the slow endpoint's slots are all taken

    for (let i = 0; i < HEALTHY_EVENTS; i++) {
      await api(dispatcher.url, "POST", "/v1/events", {
        type: "job.updated",
        namespace: "iso",
        id: `ok-${i}`,
        data: { i },
      });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const latencies = await eventually(
      async () => {
        const result: number[] = [];
        for (let i = 0; i < HEALTHY_EVENTS; i++) {
          const record = await readDelivery(redis, deliveryId("iso", `ok-${i}`, "healthy"), dispatcher.keys);
          if (record?.phase !== "SENT") return undefined;
          const attempt = record.attempts[0]!;
          result.push(Date.parse(attempt.startedAt) + attempt.durationMs - Date.parse(record.ingestedAt));
        }
        return result;
      },
      10_000,
      "every healthy delivery SENT",
    );
    latencies.sort((a, b) => a - b);
    // generous for a loaded 2-core CI box; a head-of-line-blocked delivery would wait seconds
    expect(latencies.at(-1)).toBeLessThan(500);
    expect(latencies[Math.floor(latencies.length / 2)]).toBeLessThan(150);

    // the slow endpoint never had more than its concurrency in flight, and its backlog was handed back
    expect(slow.requests("/slow").length).toBeLessThanOrEqual(4 * 3);
    const metrics = await (await fetch(`${dispatcher.url}/metrics`)).text();
    expect(metrics).toMatch(/dataforce_dispatcher_deliveries_deferred_total\{reason="endpoint-\w+"\} [1-9]/);
  });
});
