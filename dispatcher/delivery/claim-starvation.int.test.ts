import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { readDelivery } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import { CONSUMER_GROUPS, keyspace } from "../../contract/keys.ts";
import { onePartition } from "../../contract/partitions.ts";
import { NamespaceRoutingSchema, writeNamespaceRouting } from "../../contract/routing-config.ts";
import { ensureConsumerGroup } from "../../contract/streams/stream-consumer.ts";
import { eventually, TEST_SECRET_BOX, testRouting, testSettings } from "../../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../../test/support/receiver.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher.ts";
import { Fanout, type IncomingEvent } from "../fanout/fanout.ts";
import { createMetrics } from "../metrics.ts";
import { prepareNamespace, type RoutingWatcher } from "../routing-table.ts";

let redis: Redis;
let receiver: Receiver;
let dispatcher: Dispatcher | undefined;

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
  redis.disconnect();
});
afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
});

const event = (id: string): IncomingEvent => ({
  type: "job.created",
  namespace: "claims",
  id,
  occurredAt: new Date().toISOString(),
  data: "{}",
  ingestedAt: Date.now(),
});

describe("taking over a dead replica's work", () => {
  it("is not starved by a read loop that keeps the buffer full", async () => {
    receiver.on("/slow", { kind: "respond", status: 200, delayMs: 100 });
    const settings = testSettings(inject("redisUrl"), {
      maxBuffered: 8,
      maxQueued: 8,
      endpointConcurrency: 1,
      endpointMaxQueueWaitMs: 60_000,
      claimIdleMs: 300,
    });
    const keys = keyspace(settings.keyTag);
    const routing = NamespaceRoutingSchema.parse(
      testRouting("claims", [{ name: "slow", event: "job.created", url: receiver.url("/slow") }], {
        delivery: {
          maxAttempts: 3,
          timeoutMs: 5_000,
          backoff: { initialDelayMs: 20, maxDelayMs: 200, multiplier: 2 },
        },
      }),
    );
    const revision = await writeNamespaceRouting(redis, routing, keys, TEST_SECRET_BOX);
    const fanout = new Fanout({
      redis,
      partitions: onePartition(keys),
      routing: {
        loaded: true,
        revision,
        namespace: () => prepareNamespace(routing),
      } as unknown as RoutingWatcher,
      metrics: createMetrics(async () => null),
      logger: pino({ level: "silent" }),
      retentionMs: 60_000,
      statusStreamMaxLen: 1000,
      idempotencyWindowMs: 60_000,
    });
    // a replica that died holding one delivery, then a backlog of 100 deliveries to a slow endpoint
    await ensureConsumerGroup(redis, keys.deliveries, CONSUMER_GROUPS.delivery);
    await fanout.record([event("orphan")]);
    await redis.xreadgroup(
      "GROUP",
      CONSUMER_GROUPS.delivery,
      "dead",
      "COUNT",
      1,
      "STREAMS",
      keys.deliveries,
      ">",
    );
    await fanout.record(Array.from({ length: 100 }, (_, i) => event(`backlog-${i}`)));

    dispatcher = await startDispatcher(settings);
    const orphan = deliveryId("claims", "orphan", "slow");
    await eventually(
      async () => ((await readDelivery(redis, orphan, keys))?.phase === "SENT" ? true : undefined),
      5_000,
      "the dead replica's delivery to be taken over and sent",
    );
    // long before the backlog (≥ 10 s at one 100 ms request at a time) is through
    expect(receiver.requests("/slow").length).toBeLessThan(80);
  }, 30_000);
});
