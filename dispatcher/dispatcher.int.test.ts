import { Redis } from "ioredis";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { type Dispatcher, startDispatcher } from "./dispatcher.ts";
import { readDelivery } from "./protocol/deliveries.ts";
import { writeNamespaceRouting } from "./protocol/routing-config.ts";
import { api, eventually, SECRET, testRouting, testSettings } from "./testing/fixtures.ts";
import { type Receiver, startReceiver } from "./testing/receiver.ts";

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

describe("dispatcher", () => {
  it("delivers a signed notification that standardwebhooks and svix verify", async () => {
    dispatcher = await startDispatcher(testSettings(inject("redisUrl")));
    await writeNamespaceRouting(
      redis,
      testRouting("team-a", [
        { name: "orders", uid: "u1", event: "job.created", url: receiver.url("/signed") },
      ]),
      dispatcher.keys,
    );
    const ingest = await api(dispatcher.url, "POST", "/v1/events", {
      type: "job.created",
      namespace: "team-a",
      id: "evt-1",
      data: { jobId: "j-42" },
    });
    expect(ingest).toEqual({ status: 202, body: { id: "evt-1", duplicate: false } });
    const [request] = await receiver.waitForRequests(1, "/signed");
    const headers = request!.headers as Record<string, string>;
    expect(new StandardWebhook(SECRET).verify(request!.body, headers)).toMatchObject({ type: "job.created" });
    expect(new SvixWebhook(SECRET).verify(request!.body, headers)).toMatchObject({ type: "job.created" });
    const id = headers["webhook-id"]!;
    const record = await eventually(async () => {
      const delivery = await readDelivery(redis, id, dispatcher!.keys);
      return delivery?.phase === "SENT" ? delivery : undefined;
    });
    expect(record.payload).toBe(request!.body);
    expect(record.attempts).toHaveLength(1);
  });
});
