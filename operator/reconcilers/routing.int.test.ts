import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import {
  NamespaceRoutingSchema,
  readRoutingTable,
  writeNamespaceRouting,
} from "../../contract/routing-config.ts";
import { generateEncryptionKey, secretBox } from "../../contract/secret-box.ts";
import { TEST_SECRET_BOX, testRouting, uniqueKeyTag } from "../../test/support/fixtures.ts";
import { createLogger } from "../logger.ts";
import { applyRouting } from "./routing.ts";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => {
  redis.disconnect();
});

describe("applyRouting errors", () => {
  it("carry no routing document, so the reconcile error log holds no secret", async () => {
    const keys = keyspace(uniqueKeyTag());
    // The revision is no integer: the write script fails inside Redis, at its INCR.
    await redis.set(keys.routingRevision, "not a number");
    const error = await applyRouting({ redis, keys, box: TEST_SECRET_BOX }, "acme", {
      action: "write",
      routing: {
        namespace: "acme",
        enabled: true,
        delivery: {
          maxAttempts: 3,
          timeoutMs: 15_000,
          backoff: { initialDelayMs: 1_000, maxDelayMs: 60_000, multiplier: 2 },
          circuitBreaker: { consecutiveFailures: 0, cooldownMs: 30_000, maxCooldownMs: 600_000 },
        },
        signingSecrets: [SECRET],
        allowPlainHttp: false,
        ingestTokenDigests: [],
        eventLogTokenDigests: [],
        webhooks: [
          {
            name: "orders",
            uid: "u",
            event: "job.created",
            url: "https://example.com/hook",
            paused: false,
            ordering: "Unordered",
            autoPaused: false,
            headers: { authorization: "Bearer tok-789" },
          },
        ],
      },
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toHaveProperty("command");
    expect(String((error as Error).message)).toContain("not an integer");

    const lines: string[] = [];
    const logger = createLogger(
      { level: "info" },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    logger.warn({ err: error, key: "acme/default" }, "reconcile failed, retrying with backoff");
    // The dispatcher's own (plain pino) loggers must be safe too: the error itself holds nothing.
    const plain = JSON.stringify({
      ...(error as object),
      message: (error as Error).message,
      stack: (error as Error).stack,
    });
    for (const text of [lines.join(""), plain]) {
      expect(text).not.toContain("whsec_");
      expect(text).not.toContain("Bearer");
    }
    await redis.del(keys.routing, keys.routingRevision);
  });
});

describe("applyRouting keep", () => {
  it("leaves the stored document in place minus the webhooks not retained", async () => {
    const keys = keyspace(uniqueKeyTag());
    const hook = (name: string) => ({
      name,
      uid: `${name}-uid`,
      event: "job.created" as const,
      url: `https://${name}.example/hook`,
    });
    await writeNamespaceRouting(
      redis,
      testRouting("acme", [hook("a"), hook("b"), hook("c")]),
      keys,
      TEST_SECRET_BOX,
    );
    const retain = new Map([
      ["a", "a-uid"],
      ["c", "other-uid"], // deleted and recreated: the stored route is the old object's
    ]);
    expect(
      await applyRouting({ redis, keys, box: TEST_SECRET_BOX }, "acme", { action: "keep", retain }),
    ).toBe("written");
    const table = await readRoutingTable(redis, keys, TEST_SECRET_BOX);
    expect(table.namespaces.get("acme")?.webhooks.map((w) => w.name)).toEqual(["a"]);
    expect(
      await applyRouting({ redis, keys, box: TEST_SECRET_BOX }, "acme", { action: "keep", retain }),
    ).toBe("kept");
    expect(
      await applyRouting({ redis, keys, box: TEST_SECRET_BOX }, "other", { action: "keep", retain }),
    ).toBe("kept");
    expect((await readRoutingTable(redis, keys, TEST_SECRET_BOX)).revision).toBe(2);
  });
});

describe("applyRouting after a key rotation", () => {
  it("rewrites a document sealed with an older key once, then leaves it", async () => {
    const keys = keyspace(uniqueKeyTag());
    const oldKey = generateEncryptionKey("old");
    const routing = testRouting("acme", [{ name: "a", event: "job.created", url: "https://a.example/hook" }]);
    await writeNamespaceRouting(redis, routing, keys, secretBox(oldKey));
    const rotated = { redis, keys, box: secretBox(`${generateEncryptionKey("new")},${oldKey}`) };
    const desired = { action: "write" as const, routing: NamespaceRoutingSchema.parse(routing) };
    expect(await applyRouting(rotated, "acme", desired)).toBe("written");
    expect(await redis.hget(keys.routing, "acme")).toContain("dfw1:new:");
    expect(await redis.hget(keys.routing, "acme")).not.toContain("dfw1:old:");
    expect(await applyRouting(rotated, "acme", desired)).toBe("unchanged");
  });
});
