import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Keyspace } from "../../contract/keys.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { type NamespaceRoutingInput, writeNamespaceRouting } from "../../contract/routing-config.ts";
import { secretBox } from "../../contract/secret-box.ts";
import { type Settings, type SettingsInput, SettingsSchema } from "../../dispatcher/config.ts";

// Shared fixtures for dispatcher tests. Isolation: every test case runs in its own keyspace
// (a fresh hash tag, `{t-<random>}:…`) on the run's one Redis, so cases never see each other's
// keys or consumer groups and can run in parallel; nothing needs flushing.

export const INGEST_TOKEN = "test-ingest-token-0123456789";
export const ADMIN_TOKEN = "test-admin-token-0123456789";
export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
export const OTHER_SECRET = "whsec_dGhpcyBpcyBhIHNlY29uZCB0ZXN0IHNlY3JldA==";

/** A fixed encryption key for tests (`id:base64`); never a production key. */
export const TEST_ENCRYPTION_KEYS = "test:dGVzdC1lbmNyeXB0aW9uLWtleS1vZi0zMi1ieXRlcyE=";
/** The box the test processes seal and open the routing's secrets with. */
export const TEST_SECRET_BOX = secretBox(TEST_ENCRYPTION_KEYS);

export function uniqueKeyTag(): string {
  return `t-${randomUUID().slice(0, 8)}`;
}

/** Settings for an in-process dispatcher: loopback, fast timers, 127.0.0.1 allowed. */
export function testSettings(redisUrl: string, overrides: Partial<SettingsInput> = {}): Settings {
  return SettingsSchema.parse({
    redisUrl,
    keyTag: uniqueKeyTag(),
    host: "127.0.0.1",
    port: 0,
    encryptionKeys: TEST_ENCRYPTION_KEYS,
    ingestTokens: INGEST_TOKEN,
    adminTokens: ADMIN_TOKEN,
    allowedDestinations: "127.0.0.1",
    logLevel: process.env.DISPATCHER_TEST_LOG_LEVEL ?? "silent",
    consumerName: `test-${randomUUID().slice(0, 8)}`,
    claimIdleMs: 1_000,
    schedulerTickMs: 10,
    routingPollMs: 100,
    maintenanceIntervalMs: 1_000,
    shutdownGraceMs: 2_000,
    ...overrides,
  });
}

/** A namespace's routing with millisecond backoff and plain http allowed (receivers are local). */
export function testRouting(
  namespace: string,
  webhooks: NamespaceRoutingInput["webhooks"],
  overrides: Partial<NamespaceRoutingInput> = {},
): NamespaceRoutingInput {
  return {
    namespace,
    enabled: true,
    signingSecrets: [SECRET],
    allowPlainHttp: true,
    delivery: {
      maxAttempts: 3,
      timeoutMs: 1_000,
      backoff: { initialDelayMs: 20, maxDelayMs: 200, multiplier: 2 },
    },
    webhooks,
    ...overrides,
  };
}

/**
 * Writes each routing as the operator does (sealed with TEST_SECRET_BOX), then waits until the
 * dispatcher has applied the last: it refuses a namespace's events until then.
 */
export async function routeNamespaces(
  redis: RedisClient,
  dispatcher: { readonly keys: Keyspace; routingRevision(): number },
  routings: readonly NamespaceRoutingInput[],
  timeoutMs = 5_000,
): Promise<void> {
  let revision = 0;
  for (const routing of routings)
    revision = await writeNamespaceRouting(redis, routing, dispatcher.keys, TEST_SECRET_BOX);
  await eventually(() => (dispatcher.routingRevision() >= revision ? true : undefined), timeoutMs, "routing");
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await sleep(10);
  }
}

/** An authenticated JSON request against a dispatcher's API. */
export async function api(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  token: string = path.startsWith("/v1/events") && method === "POST" ? INGEST_TOKEN : ADMIN_TOKEN,
): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, body: parsed };
}
