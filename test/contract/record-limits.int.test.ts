import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { readDelivery } from "../../contract/deliveries.ts";
import { keyspace } from "../../contract/keys.ts";
import { RecordLimitsUnknownError } from "../../contract/record-limits.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { startDispatcher } from "../../dispatcher/dispatcher.ts";
import { askForRetry } from "../../operator/retry/retry.ts";
import { createDelivery, failDelivery } from "../support/deliveries.ts";
import { TEST_SECRET_BOX, testRouting, testSettings, uniqueKeyTag } from "../support/fixtures.ts";

// The record limits (retention, status stream cap) are the dispatcher's settings, and every
// writer of records must apply them: the operator's retry too, although it never reads the
// dispatcher's environment.

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

describe("record limits", () => {
  it("the operator's retry keeps the record as long as the dispatcher's retention says", async () => {
    const retentionMs = 90_000;
    const settings = testSettings(inject("redisUrl"), { retentionMs, statusStreamMaxLen: 50 });
    const keys = keyspace(settings.keyTag);
    await writeNamespaceRouting(redis, testRouting("ns", []), keys, TEST_SECRET_BOX);
    const dispatcher = await startDispatcher(settings);
    try {
      await createDelivery(redis, keys, "d-limits");
      await failDelivery(redis, keys, "d-limits");
      await redis.persist(keys.delivery("d-limits"));

      expect(
        (await askForRetry({ redis, keys }, { namespace: "ns", deliveryId: "d-limits" }, "token-1")).outcome,
      ).toBe("requeued");

      const ttl = await redis.pttl(keys.delivery("d-limits"));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(retentionMs);
    } finally {
      await dispatcher.stop();
    }
  });

  it("the operator's retry waits (and says why) until a dispatcher has published its limits", async () => {
    const keys = keyspace(uniqueKeyTag());
    await createDelivery(redis, keys, "d-unknown");
    await failDelivery(redis, keys, "d-unknown");
    await expect(
      askForRetry({ redis, keys }, { namespace: "ns", deliveryId: "d-unknown" }, "token-1"),
    ).rejects.toThrow(RecordLimitsUnknownError);
    expect((await readDelivery(redis, "d-unknown", keys))?.phase).toBe("FAILED");
  });
});
