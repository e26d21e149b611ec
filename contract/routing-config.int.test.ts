import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { testRouting, uniqueKeyTag } from "../test/support/fixtures.ts";
import { keyspace } from "./keys.ts";
import {
  deleteNamespaceRouting,
  readRoutingRevision,
  readRoutingTable,
  writeNamespaceRouting,
} from "./routing-config.ts";

let redis: Redis;
let subscriber: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
  subscriber = new Redis(inject("redisUrl"));
});
afterAll(() => {
  redis.disconnect();
  subscriber.disconnect();
});

describe("routing configuration", () => {
  it("writes, reads and deletes namespaces, bumping and announcing the revision each time", async () => {
    const keys = keyspace(uniqueKeyTag());
    const announced: string[] = [];
    subscriber.on("message", (channel: string, message: string) => {
      if (channel === keys.routingChannel) announced.push(message);
    });
    await subscriber.subscribe(keys.routingChannel);

    expect(await readRoutingTable(redis, keys)).toEqual({ revision: 0, namespaces: new Map(), invalid: [] });
    const hook = { name: "orders", event: "job.created" as const, url: "https://example.com/hook" };
    expect(await writeNamespaceRouting(redis, testRouting("team-a", [hook]), keys)).toBe(1);
    expect(await writeNamespaceRouting(redis, testRouting("team-b", [], { enabled: false }), keys)).toBe(2);

    const table = await readRoutingTable(redis, keys);
    expect(table.revision).toBe(2);
    expect(table.namespaces.get("team-a")?.webhooks[0]).toEqual({
      ...hook,
      uid: "",
      paused: false,
      headers: {},
    });
    expect(table.namespaces.get("team-b")?.enabled).toBe(false);

    expect(await deleteNamespaceRouting(redis, "team-a", keys)).toBe(3);
    expect([...(await readRoutingTable(redis, keys)).namespaces.keys()]).toEqual(["team-b"]);
    expect(await readRoutingRevision(redis, keys)).toBe(3);
    await expect.poll(() => announced).toEqual(["1", "2", "3"]);
  });

  it("refuses to write an invalid document", async () => {
    const keys = keyspace(uniqueKeyTag());
    await expect(
      writeNamespaceRouting(redis, testRouting("team-a", [], { signingSecrets: ["not-a-secret"] }), keys),
    ).rejects.toThrow(/whsec_/);
    expect(await readRoutingRevision(redis, keys)).toBe(0);
  });

  it("reports documents written by other means that do not validate, and routes the rest", async () => {
    const keys = keyspace(uniqueKeyTag());
    await writeNamespaceRouting(redis, testRouting("good", []), keys);
    await redis.hset(keys.routing, "broken", "{not json", "wrong", JSON.stringify(testRouting("other", [])));
    const table = await readRoutingTable(redis, keys);
    expect([...table.namespaces.keys()]).toEqual(["good"]);
    expect(table.invalid.map((entry) => entry.namespace).sort()).toEqual(["broken", "wrong"]);
  });
});
