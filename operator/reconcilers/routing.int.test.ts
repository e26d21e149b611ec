import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyspace } from "../../dispatcher/protocol/keys.ts";
import { uniqueKeyTag } from "../../dispatcher/testing/fixtures.ts";
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
    const error = await applyRouting(redis, keys, "acme", {
      action: "write",
      routing: {
        namespace: "acme",
        enabled: true,
        delivery: {
          maxAttempts: 3,
          timeoutMs: 15_000,
          backoff: { initialDelayMs: 1_000, maxDelayMs: 60_000, multiplier: 2 },
        },
        signingSecrets: [SECRET],
        allowPlainHttp: false,
        webhooks: [
          {
            name: "orders",
            uid: "u",
            event: "job.created",
            url: "https://example.com/hook",
            paused: false,
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
