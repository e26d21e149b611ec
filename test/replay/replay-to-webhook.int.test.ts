import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { Redis as RedisClient } from "ioredis";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { readDelivery } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import { keyspace } from "../../contract/keys.ts";
import type { NamespaceRoutingInput } from "../../contract/routing-config.ts";
import { type Dispatcher, startDispatcher } from "../../dispatcher/dispatcher.ts";
import type { ReconcileResult } from "../../operator/controller/controller.ts";
import { fakeReplay } from "../support/fake-replay.ts";
import {
  api,
  eventually,
  routeNamespaces,
  SECRET,
  testRouting,
  testSettings,
  uniqueKeyTag,
} from "../support/fixtures.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";

// WebhookReplay.spec.targetWebhook with the real parts around it: a dispatcher delivers, real
// receivers on 127.0.0.1, the replay's reconciler with the real scripts (the API server faked as
// in operator/replay/replay.int.test.ts). Deliveries of webhook "old" that FAILED are sent to
// webhook "new" (a replacement endpoint), as new deliveries, once, even when the replay runs twice.

const NS = "team-r";
let redis: Redis;
let receiver: Receiver;
let dispatcher: Dispatcher;
const TAG = uniqueKeyTag();
const keys = keyspace(TAG);

beforeAll(async () => {
  redis = new RedisClient(inject("redisUrl"));
  receiver = await startReceiver();
  dispatcher = await startDispatcher(testSettings(inject("redisUrl"), { keyTag: TAG }));
});
afterAll(async () => {
  await dispatcher?.stop();
  await receiver?.close();
  redis.disconnect();
});

async function route(webhooks: NamespaceRoutingInput["webhooks"]): Promise<void> {
  await routeNamespaces(
    redis,
    dispatcher,
    [
      testRouting(NS, webhooks, {
        delivery: {
          maxAttempts: 2,
          timeoutMs: 2_000,
          backoff: { initialDelayMs: 20, maxDelayMs: 20, multiplier: 1 },
          // the old webhook's deliveries must spend their attempts and end FAILED
          circuitBreaker: { consecutiveFailures: 0 },
        },
      }),
    ],
    10_000,
  );
}

/** The replay, its window ending a second from now; `run` reconciles it as a new operator would. */
function replayTo(spec: Record<string, unknown>) {
  const replay = fakeReplay(spec, { namespace: NS, name: "to-new", createdAt: new Date(Date.now() + 1_000) });
  const run = async (): Promise<ReconcileResult | undefined> => {
    const { result } = await replay.run({ redis, keys });
    if (result?.requeueAfter !== undefined && result.requeueAfter <= 1_000)
      throw new Error("the replay did not finish");
    return result;
  };
  return { object: replay.object, ready: replay.ready, run };
}

describe("a WebhookReplay with targetWebhook", () => {
  it("sends the FAILED deliveries of one webhook to another as new deliveries, once", async () => {
    receiver.on("/old", { kind: "respond", status: 503 });
    receiver.on("/new", { kind: "respond", status: 200 });
    await route([
      { name: "old", uid: "old-uid", event: "job.created", url: receiver.url("/old") },
      // the replacement endpoint, set up but paused: not delivering yet
      { name: "new", uid: "new-uid", event: "job.created", url: receiver.url("/new"), paused: true },
    ]);
    const from = new Date(Date.now() - 1_000).toISOString();
    const eventIds = ["r-1", "r-2", "r-3"];
    for (const id of eventIds)
      expect(
        (
          await api(dispatcher.url, "POST", "/v1/events", {
            type: "job.created",
            namespace: NS,
            id,
            data: { id },
          })
        ).status,
      ).toBe(202);
    const originals = eventIds.map((id) => deliveryId(NS, id, "old"));
    await eventually(
      async () => {
        const phases = await Promise.all(
          originals.map(async (id) => (await readDelivery(redis, id, keys))?.phase),
        );
        return phases.every((phase) => phase === "FAILED") ? true : undefined;
      },
      20_000,
      "the old webhook's deliveries FAILED",
    );

    // the target is paused: the replay waits, says why, and sends nothing
    const replay = replayTo({ from, phases: ["FAILED"], webhook: "old", targetWebhook: "new" });
    expect((await replay.run())?.requeueAfter).toBe(10_000);
    expect(replay.ready()).toMatchObject({
      status: "False",
      reason: "TargetNotReady",
      message: "targetWebhook new is not delivering: it is paused",
    });
    expect(replay.object.status?.conditions?.find((c) => c.type === "Reconciling")).toMatchObject({
      status: "True",
    });

    // resumed: the replay sends the three to it
    await route([
      { name: "old", uid: "old-uid", event: "job.created", url: receiver.url("/old") },
      { name: "new", uid: "new-uid", event: "job.created", url: receiver.url("/new") },
    ]);
    await replay.run();
    expect(replay.ready()).toMatchObject({
      status: "True",
      reason: "Complete",
      message: "replayed: 3 of 3 matched deliveries sent to webhook new, 0 skipped",
    });
    const received = await receiver.waitForRequests(3, "/new", 20_000);
    const bodies = received.map((request) => {
      // signed like any delivery, verifiable with the public library
      return new StandardWebhook(SECRET).verify(request.body, request.headers as Record<string, string>) as {
        id: string;
        webhook: string;
        data: { id: string };
      };
    });
    expect(bodies.map((body) => body.id).sort()).toEqual(eventIds);
    expect(bodies.every((body) => body.webhook === "new" && body.data.id === body.id)).toBe(true);
    // new deliveries (ids of their own, each once), the originals left FAILED
    const copyIds = received.map((request) => String(request.headers["webhook-id"]));
    expect(new Set(copyIds).size).toBe(3);
    for (const id of copyIds) {
      expect(id).toMatch(/^new-/);
      expect(await readDelivery(redis, id, keys)).toMatchObject({
        phase: "SENT",
        webhook: "new",
        webhookUid: "new-uid",
      });
    }
    for (const id of originals) expect((await readDelivery(redis, id, keys))?.phase).toBe("FAILED");

    // the replay runs again from scratch (a crash before its status write, a new leader): no copy twice
    replay.object.status = { observedGeneration: 0 };
    await replay.run();
    expect(replay.object.status).toMatchObject({ matched: 3, requeued: 3, skipped: 0 });
    await sleep(1_000);
    expect(receiver.requests("/new")).toHaveLength(3);
  }, 60_000);
});
