import { z } from "zod";
import type { Keyspace } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";
import { reportEndpointHealthScript } from "./scripts/report-endpoint-health.ts";
import { runScript } from "./scripts/script.ts";

// Endpoint health, per webhook: what the dispatchers learn from their attempts (circuit state,
// failures in a row, failure ratio, the current run of failures), published for the operator,
// which shows it in the Webhook's status.health and auto-pauses a webhook that keeps failing.
// One hash for the deployment (`Keyspace.endpointHealth`, global like the routing), field
// `<namespace>/<webhook>`, value the JSON below. No URL, no response body, nothing secret: a
// failure's reason is an HTTP status or an error code. A webhook without a field is Healthy.

export const ENDPOINT_HEALTH_STATES = ["Healthy", "Degraded", "CircuitOpen"] as const;
export type EndpointHealthState = (typeof ENDPOINT_HEALTH_STATES)[number];

const epochMs = z.int().nonnegative();

export const EndpointHealthSchema = z.object({
  /** The Webhook's metadata.uid the record is about (a webhook deleted and made again starts afresh). */
  uid: z.string().max(128).default(""),
  state: z.enum(ENDPOINT_HEALTH_STATES),
  /** Failed attempts in a row, as the replica that reported last counted them. */
  consecutiveFailures: z.int().nonnegative(),
  /** Failed share of the last `windowAttempts` attempts (at most ENDPOINT_HEALTH_WINDOW). */
  failureRatio: z.number().min(0).max(1),
  windowAttempts: z.int().nonnegative(),
  /** First failure of the current unbroken run of failures (absent when the last attempt succeeded). */
  firstFailureAt: epochMs.optional(),
  lastFailureAt: epochMs.optional(),
  /**
   * The last success any replica reported (kept across replicas by the script): a run of failures
   * that another replica reports cannot have started before it.
   */
  lastSuccessAt: epochMs.optional(),
  /** `HTTP <status>` or the attempt's error code (`timeout`, `connection_refused`, …). */
  lastFailureReason: z.string().max(64).optional(),
  /** When the open circuit lets its next probe through. */
  nextProbeAt: epochMs.optional(),
  updatedAt: epochMs,
});
export type EndpointHealth = z.infer<typeof EndpointHealthSchema>;

/** Attempts the failure ratio is taken over. */
export const ENDPOINT_HEALTH_WINDOW = 20;

/** The hash field of a webhook's record. */
export function endpointHealthField(namespace: string, webhook: string): string {
  return `${namespace}/${webhook}`;
}

/** Stores records (merging each run of failures with the stored one: report-endpoint-health). */
export async function reportEndpointHealth(
  redis: RedisClient,
  keys: Keyspace,
  records: ReadonlyArray<{ field: string; health: EndpointHealth }>,
): Promise<void> {
  if (records.length === 0) return;
  const args = records.flatMap(({ field, health }) => [field, JSON.stringify(health)]);
  await runScript(redis, reportEndpointHealthScript, [keys.endpointHealth], args);
}

/** Every webhook's record, by field; records that do not parse are left out. */
export async function readEndpointHealth(
  redis: RedisClient,
  keys: Keyspace,
): Promise<Map<string, EndpointHealth>> {
  const stored = await redis.hgetall(keys.endpointHealth);
  const records = new Map<string, EndpointHealth>();
  for (const [field, json] of Object.entries(stored)) {
    try {
      const parsed = EndpointHealthSchema.safeParse(JSON.parse(json));
      if (parsed.success) records.set(field, parsed.data);
    } catch {
      // not JSON: left out, as an unknown webhook's would be
    }
  }
  return records;
}

/** Drops the records of webhooks that no longer exist. */
export async function forgetEndpointHealth(
  redis: RedisClient,
  keys: Keyspace,
  fields: readonly string[],
): Promise<void> {
  if (fields.length > 0) await redis.hdel(keys.endpointHealth, ...fields);
}
