import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { readDelivery } from "../../contract/deliveries.ts";
import { keyspace } from "../../contract/keys.ts";
import { publishRecordLimits } from "../../contract/record-limits.ts";
import { readRestoreRequests } from "../../contract/restore-requests.ts";
import { createDelivery, failDelivery, TEST_FANOUT_LIMITS } from "../../test/support/deliveries.ts";
import { uniqueKeyTag } from "../../test/support/fixtures.ts";
import { askForRetry } from "./retry.ts";

// The retry annotation's Redis side: what a WebhookEvent in one namespace can reach.

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
});
afterAll(() => redis.disconnect());

describe("retry by annotation", () => {
  it("reaches only the delivery of the object's own namespace, and says nothing of another's", async () => {
    const keys = keyspace(uniqueKeyTag());
    await publishRecordLimits(redis, keys, TEST_FANOUT_LIMITS);
    await createDelivery(redis, keys, "hook-theirs"); // namespace "ns"
    await failDelivery(redis, keys, "hook-theirs");

    const foreign = await askForRetry(
      { redis, keys },
      { namespace: "attacker", deliveryId: "hook-theirs" },
      "t1",
    );
    expect(foreign.outcome).toBe("ignored");
    expect(foreign.event.note).toContain("no longer in the dispatcher's log");
    expect(foreign.event.note).not.toContain("FAILED");
    const untouched = await readDelivery(redis, "hook-theirs", keys);
    expect(untouched?.phase).toBe("FAILED");
    expect(untouched?.lastRetryToken).toBeUndefined();

    const own = await askForRetry({ redis, keys }, { namespace: "ns", deliveryId: "hook-theirs" }, "t1");
    expect(own.outcome).toBe("requeued");
    expect((await readDelivery(redis, "hook-theirs", keys))?.phase).toBe("QUEUED");
  });

  it("asks the dispatchers to bring back a delivery only the durable log store has, when they archive", async () => {
    const keys = keyspace(uniqueKeyTag());
    await publishRecordLimits(redis, keys, TEST_FANOUT_LIMITS);
    // no store: a delivery Redis no longer has is gone
    const gone = await askForRetry({ redis, keys }, { namespace: "ns", deliveryId: "hook-old" }, "t1");
    expect(gone.outcome).toBe("ignored");
    expect(await readRestoreRequests(redis, keys, 10)).toEqual([]);

    // the dispatchers archive this keyspace: the request is left for them, in the object's namespace
    await redis.set(keys.archiveAdopted, String(Date.now()));
    const requested = await askForRetry({ redis, keys }, { namespace: "ns", deliveryId: "hook-old" }, "t2");
    expect(requested).toMatchObject({
      outcome: "requested",
      event: { type: "Normal", reason: "RetryRequested" },
    });
    expect(await readRestoreRequests(redis, keys, 10)).toEqual([
      { entryId: expect.any(String), deliveryId: "hook-old", token: "t2", namespace: "ns" },
    ]);
  });
});
