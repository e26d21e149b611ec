import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, RedisConnectionSchema } from "../../common/redis-connection.ts";
import {
  countFanoutFailure,
  deadLetterEntry,
  readDelivery,
  requestRetry,
} from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import { CONSUMER_GROUPS, keyspace } from "../../contract/keys.ts";
import { readRecordLimits } from "../../contract/record-limits.ts";
import { redisAclRules } from "../../contract/redis-acl.ts";
import { type Dispatcher, startDispatcher } from "../../dispatcher/dispatcher.ts";
import { startRedis, type TestRedis } from "../env/redis.ts";
import {
  api,
  eventually,
  routeNamespaces,
  testRouting,
  testSettings,
  uniqueKeyTag,
} from "../support/fixtures.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";

// The two processes' Redis users (contract/redis-acl.ts) on a real redis-server that serves
// TLS only: the whole data path works through them, and the dispatcher's user cannot touch
// what it must not (the routing, another installation's keys, the server itself).

const TAG = uniqueKeyTag();
const keys = keyspace(TAG);
const PASSWORDS = { operator: "operator-password-0123456789", dispatcher: "dispatcher-password-0123456789" };

let server: TestRedis;
let receiver: Receiver;
let dispatcher: Dispatcher;
let operatorRedis: Redis;
let dispatcherRedis: Redis;

const asUser = (role: "operator" | "dispatcher") => ({
  redisUrl: `rediss://127.0.0.1:${server.port}`,
  redisUsername: `dataforce-${role}`,
  redisPassword: PASSWORDS[role],
  redisTlsCaFile: server.caFile,
});

beforeAll(async () => {
  server = await startRedis({
    tls: true,
    aclUsers: (["operator", "dispatcher"] as const).map(
      (role) => `user dataforce-${role} on >${PASSWORDS[role]} ${redisAclRules(role, TAG).join(" ")}`,
    ),
  });
  receiver = await startReceiver();
  const connection = (role: "operator" | "dispatcher") =>
    connectRedis(RedisConnectionSchema.parse(asUser(role)), {
      maxRetriesPerRequest: 0,
    });
  operatorRedis = connection("operator");
  dispatcherRedis = connection("dispatcher");
  dispatcher = await startDispatcher(
    testSettings(asUser("dispatcher").redisUrl, { ...asUser("dispatcher"), keyTag: TAG }),
  );
});
afterAll(async () => {
  await dispatcher?.stop();
  operatorRedis?.disconnect();
  dispatcherRedis?.disconnect();
  await receiver?.close();
  await server?.stop();
});

describe("Redis ACL users over TLS", () => {
  it("carries the whole path: operator writes routing, dispatcher delivers, operator retries", async () => {
    receiver.on("/acl", (_request, count) => ({ kind: "respond", status: count === 1 ? 500 : 200 }));
    await routeNamespaces(operatorRedis, dispatcher, [
      testRouting(
        "team-a",
        [
          { name: "orders", uid: "u1", event: "job.created", url: receiver.url("/acl") },
          // an ordered webhook: its queue's keys are the dispatcher's to write too
          {
            name: "ledger",
            uid: "u2",
            event: "job.created",
            url: receiver.url("/acl-ordered"),
            ordering: "Ordered",
          },
        ],
        {
          delivery: {
            maxAttempts: 1,
            timeoutMs: 1_000,
            backoff: { initialDelayMs: 10, maxDelayMs: 10, multiplier: 1 },
          },
        },
      ),
    ]);

    const published = await api(dispatcher.url, "POST", "/v1/events", {
      type: "job.created",
      namespace: "team-a",
      id: "evt-acl",
      data: { jobId: "j1" },
    });
    expect(published.status).toBe(202);
    const id = deliveryId("team-a", "evt-acl", "orders");
    await eventually(async () =>
      (await readDelivery(operatorRedis, id, keys))?.phase === "FAILED" ? true : undefined,
    );

    // the operator's side: record limits (published by the dispatcher) and the retry script
    const limits = await readRecordLimits(operatorRedis, keys);
    expect(await requestRetry(operatorRedis, id, "retry-1", keys, limits, { namespace: "team-a" })).toEqual({
      outcome: "requeued",
    });
    await eventually(async () =>
      (await readDelivery(operatorRedis, id, keys))?.phase === "SENT" ? true : undefined,
    );
    expect(receiver.requests("/acl")).toHaveLength(2);
    const ordered = deliveryId("team-a", "evt-acl", "ledger");
    expect((await readDelivery(operatorRedis, ordered, keys))?.phase).toBe("SENT");
    expect(await operatorRedis.exists(keys.orderedQueue("team-a", "ledger"))).toBe(0);
  });

  it("lets the dispatcher read the routing but never write it", async () => {
    await expect(dispatcherRedis.hgetall(keys.routing)).resolves.toBeTypeOf("object");
    const refused = [
      () => dispatcherRedis.hset(keys.routing, "team-a", "{}"),
      () => dispatcherRedis.hdel(keys.routing, "team-a"),
      () => dispatcherRedis.del(keys.routingEpoch),
      () => dispatcherRedis.incr(keys.routingRevision),
    ];
    for (const attempt of refused) await expect(attempt()).rejects.toThrow(/NOPERM/);
  });

  it("lets the dispatcher count an ingest entry's fan-out failures and move it to the dead letters", async () => {
    // added and read in one transaction: pending here, before the running dispatcher sees it
    const added = await dispatcherRedis
      .multi()
      .xadd(keys.events, "*", "namespace", "team-a")
      .xreadgroup("GROUP", CONSUMER_GROUPS.fanout, "acl-test", "STREAMS", keys.events, ">")
      .exec();
    const entryId = String(added?.[0]?.[1]);
    expect(await countFanoutFailure(dispatcherRedis, entryId, 60_000, keys)).toBe(1);
    const entry = { entryId, reason: "test", fields: ["namespace", "team-a"] };
    await deadLetterEntry(dispatcherRedis, entry, 100, keys);
    expect(await countFanoutFailure(dispatcherRedis, entryId, 60_000, keys)).toBe(0); // acknowledged
  });

  it("keeps the dispatcher out of other installations' keys and server administration", async () => {
    const other = keyspace(`${TAG}-other`);
    const refused = [
      () => dispatcherRedis.get(other.delivery("x")),
      () => dispatcherRedis.hgetall(other.routing),
      () => dispatcherRedis.flushall(),
      () => dispatcherRedis.config("GET", "requirepass"),
      () => dispatcherRedis.keys("*"),
      () => dispatcherRedis.scan("0"),
      () => dispatcherRedis.script("FLUSH"),
      () => dispatcherRedis.call("CLIENT", "KILL", "TYPE", "normal"),
    ];
    for (const attempt of refused) await expect(attempt()).rejects.toThrow(/NOPERM/);
    // the operator is bound to its tag as well
    await expect(operatorRedis.get(other.delivery("x"))).rejects.toThrow(/NOPERM/);
    await expect(operatorRedis.flushall()).rejects.toThrow(/NOPERM/);
  });

  it("refuses clients without credentials or without TLS", async () => {
    const anonymous = connectRedis(
      RedisConnectionSchema.parse({
        redisUrl: `rediss://127.0.0.1:${server.port}`,
        redisTlsCaFile: server.caFile,
      }),
      { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true, enableReadyCheck: false },
    );
    const errors: string[] = [];
    anonymous.on("error", (error: Error) => errors.push(error.message));
    await anonymous.connect().catch((error: Error) => errors.push(`connect: ${error.message}`));
    expect(errors[0]).toMatch(/^NOAUTH/);
    anonymous.disconnect();

    const plain = connectRedis(
      RedisConnectionSchema.parse({
        redisUrl: `redis://127.0.0.1:${server.port}`,
        redisUsername: "dataforce-dispatcher",
        redisPassword: PASSWORDS.dispatcher,
      }),
      { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true, connectTimeout: 2_000 },
    );
    plain.on("error", () => {});
    await expect(plain.connect().then(() => plain.ping())).rejects.toThrow();
    plain.disconnect();
  });
});
