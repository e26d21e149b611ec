import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { TEST_SECRET_BOX, testRouting, uniqueKeyTag } from "../test/support/fixtures.ts";
import { keyspace } from "./keys.ts";
import {
  deleteNamespaceRouting,
  readRoutingRevision,
  readRoutingTable,
  writeNamespaceRouting,
} from "./routing-config.ts";
import { generateEncryptionKey, secretBox } from "./secret-box.ts";

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

    expect(await readRoutingTable(redis, keys, TEST_SECRET_BOX)).toEqual({
      revision: 0,
      namespaces: new Map(),
      invalid: [],
      epoch: null,
    });
    const hook = { name: "orders", event: "job.created" as const, url: "https://example.com/hook" };
    expect(await writeNamespaceRouting(redis, testRouting("team-a", [hook]), keys, TEST_SECRET_BOX)).toBe(1);
    expect(
      await writeNamespaceRouting(
        redis,
        testRouting("team-b", [], { enabled: false }),
        keys,
        TEST_SECRET_BOX,
      ),
    ).toBe(2);

    const table = await readRoutingTable(redis, keys, TEST_SECRET_BOX);
    expect(table.revision).toBe(2);
    expect(table.namespaces.get("team-a")?.webhooks[0]).toEqual({
      ...hook,
      uid: "",
      paused: false,
      ordering: "Unordered",
      autoPaused: false,
      headers: {},
    });
    expect(table.namespaces.get("team-b")?.enabled).toBe(false);

    expect(await deleteNamespaceRouting(redis, "team-a", keys)).toBe(3);
    expect([...(await readRoutingTable(redis, keys, TEST_SECRET_BOX)).namespaces.keys()]).toEqual(["team-b"]);
    expect(await readRoutingRevision(redis, keys)).toBe(3);
    await expect.poll(() => announced).toEqual(["1", "2", "3"]);
  });

  it("refuses to write an invalid document", async () => {
    const keys = keyspace(uniqueKeyTag());
    await expect(
      writeNamespaceRouting(
        redis,
        testRouting("team-a", [], { signingSecrets: ["not-a-secret"] }),
        keys,
        TEST_SECRET_BOX,
      ),
    ).rejects.toThrow(/whsec_/);
    expect(await readRoutingRevision(redis, keys)).toBe(0);
  });

  it("reports documents written by other means that do not validate, and routes the rest", async () => {
    const keys = keyspace(uniqueKeyTag());
    await writeNamespaceRouting(redis, testRouting("good", []), keys, TEST_SECRET_BOX);
    await redis.hset(keys.routing, "broken", "{not json", "wrong", JSON.stringify(testRouting("other", [])));
    const table = await readRoutingTable(redis, keys, TEST_SECRET_BOX);
    expect([...table.namespaces.keys()]).toEqual(["good"]);
    expect(table.invalid.map((entry) => entry.namespace).sort()).toEqual(["broken", "wrong"]);
  });
});

describe("routing secrets at rest", () => {
  const SECRET_HEADER = "Bearer s3cr3t-header-value";
  const hook = {
    name: "orders",
    event: "job.created" as const,
    url: "https://example.com/hook",
    headers: { Authorization: SECRET_HEADER },
  };

  it("stores no signing secret and no header value in clear; the dispatchers' box opens them", async () => {
    const keys = keyspace(uniqueKeyTag());
    const routing = testRouting("team-a", [hook]);
    await writeNamespaceRouting(redis, routing, keys, TEST_SECRET_BOX);
    const stored = (await redis.hget(keys.routing, "team-a")) ?? "";
    expect(stored).not.toContain("whsec_");
    expect(stored).not.toContain("s3cr3t");
    expect(stored).not.toContain(routing.signingSecrets[0]!.slice("whsec_".length));
    const opened = (await readRoutingTable(redis, keys, TEST_SECRET_BOX)).namespaces.get("team-a");
    expect(opened?.signingSecrets).toEqual(routing.signingSecrets);
    expect(opened?.webhooks[0]?.headers).toEqual({ Authorization: SECRET_HEADER });
  });

  it("a document moved to another namespace, or read with other keys, routes nothing", async () => {
    const keys = keyspace(uniqueKeyTag());
    await writeNamespaceRouting(redis, testRouting("team-a", [hook]), keys, TEST_SECRET_BOX);
    const stored = (await redis.hget(keys.routing, "team-a")) ?? "";
    // someone with write access to Redis copies team-a's document into team-b's field
    await redis.hset(keys.routing, "team-b", stored.replace('"namespace":"team-a"', '"namespace":"team-b"'));
    const table = await readRoutingTable(redis, keys, TEST_SECRET_BOX);
    expect([...table.namespaces.keys()]).toEqual(["team-a"]);
    expect(table.invalid).toEqual([
      { namespace: "team-b", error: expect.stringContaining("does not authenticate") },
    ]);
    expect(JSON.stringify(table.invalid)).not.toContain("s3cr3t");

    const strangers = await readRoutingTable(redis, keys, secretBox(generateEncryptionKey("other")));
    expect(strangers.namespaces.size).toBe(0);
  });
});
