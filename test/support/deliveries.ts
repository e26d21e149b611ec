import type { Redis } from "ioredis";
import { type FanoutLimits, fanoutEvents, settleDeliveries } from "../../contract/deliveries.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import type { FanoutPlan } from "../../contract/scripts/fanout-events.ts";
import type { SettleOutcome } from "../../contract/scripts/settle-deliveries.ts";
import { ensureConsumerGroup } from "../../contract/streams/stream-consumer.ts";

// Delivery records made with the contract's own scripts, for tests that need one in a given
// phase without running a dispatcher: namespace "ns", webhook "hook", event `evt-<id>`.

export const TEST_FANOUT_LIMITS: FanoutLimits = {
  retentionMs: 60_000,
  statusStreamMaxLen: 1000,
  idempotencyWindowMs: 60_000,
  deadLetterMaxLen: 1000,
};

/** A QUEUED delivery (version 0) with no attempts. */
export async function createDelivery(
  redis: Redis,
  keys: Keyspace,
  id: string,
  limits: FanoutLimits = TEST_FANOUT_LIMITS,
): Promise<void> {
  await ensureConsumerGroup(redis, keys.events, CONSUMER_GROUPS.fanout);
  const entryId = await redis.xadd(keys.events, "*", "type", "job.created", "namespace", "ns", "data", "{}");
  const plan: FanoutPlan = {
    invalid: [],
    events: [
      {
        entryId: entryId!,
        namespace: "ns",
        id: `evt-${id}`,
        type: "job.created",
        occurredAt: "2025-01-01T00:00:00.000Z",
        ingestedAt: Date.now(),
        data: "{}",
        routing: "routed",
        deliveries: [
          { id, webhook: "hook", uid: "u", url: "https://example.com", payload: "{}", maxAttempts: 3 },
        ],
      },
    ],
  };
  await fanoutEvents(redis, plan, limits, keys);
}

/** The JSON of an attempt that got HTTP 500. */
export function failedAttempt(number: number): string {
  return JSON.stringify({
    number,
    startedAt: new Date().toISOString(),
    durationMs: 3,
    statusCode: 500,
    errorCode: "http_status",
  });
}

export function settle(
  redis: Redis,
  keys: Keyspace,
  outcomes: SettleOutcome[],
  limits: FanoutLimits = TEST_FANOUT_LIMITS,
): Promise<string> {
  return settleDeliveries(redis, outcomes, limits, keys);
}

/** Takes a delivery made by createDelivery to FAILED (version 2) in two attempts. */
export async function failDelivery(
  redis: Redis,
  keys: Keyspace,
  id: string,
  limits: FanoutLimits = TEST_FANOUT_LIMITS,
): Promise<void> {
  const due = String(Date.now() + 60_000);
  await settle(
    redis,
    keys,
    [{ entryId: "", id, version: "0", kind: "retry", attempt: failedAttempt(1), due }],
    limits,
  );
  await settle(
    redis,
    keys,
    [
      {
        entryId: "",
        id,
        version: "1",
        kind: "failed",
        attempt: failedAttempt(2),
        reason: "attempts-exhausted",
      },
    ],
    limits,
  );
}
