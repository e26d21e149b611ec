import { createHash } from "node:crypto";
import { z } from "zod";
import { MAX_FILTER_LENGTH } from "./event-filter.ts";
import { EventTypeSchema } from "./event-types.ts";
import type { Keyspace } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";
import { runScript } from "./scripts/script.ts";
import { writeRoutingScript } from "./scripts/write-routing.ts";
import type { SecretBox } from "./secret-box.ts";
import { isValidSigningKey, SIGNING_KEY_FORMATS } from "./signing-keys.ts";

// The routing configuration: what the operator compiles from WebhookIntegration + Webhook objects
// (and their Secrets) and what dispatchers route by. One JSON document per namespace in the hash
// `Keyspace.routing`; every write bumps `Keyspace.routingRevision` and publishes the new revision
// on `Keyspace.routingChannel`, and dispatchers apply it within about a second, without restart.

const KUBERNETES_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A `whsec_` secret (v1) or a `whsk_` ed25519 private key (v1a); see signing-keys.ts. */
export const SigningSecretSchema = z
  .string()
  .refine(isValidSigningKey, `a signing key is ${SIGNING_KEY_FORMATS}`);

export const BackoffSchema = z.object({
  /** Delay before the second attempt. */
  initialDelayMs: z.int().min(1).max(86_400_000).default(30_000),
  /** Upper bound of any delay (Retry-After included). */
  maxDelayMs: z.int().min(1).max(86_400_000).default(3_600_000),
  /** Each further delay is the previous one times this (before jitter). */
  multiplier: z.number().min(1).max(100).default(10),
});
export type Backoff = z.infer<typeof BackoffSchema>;

/** Endpoint health (dispatcher/delivery/circuit-breaker.ts). */
export const CircuitBreakerSchema = z.object({
  /** Failed attempts in a row that open a webhook's circuit; 0 turns the breaker off. */
  consecutiveFailures: z.int().min(0).max(1000).default(5),
  /** How long an open circuit holds deliveries back before one probe attempt. */
  cooldownMs: z.int().min(1).max(86_400_000).default(30_000),
  /** Upper bound of the cooldown, which doubles after each failed probe. */
  maxCooldownMs: z.int().min(1).max(86_400_000).default(600_000),
});
export type CircuitBreakerSettings = z.infer<typeof CircuitBreakerSchema>;

export const DeliverySettingsSchema = z.object({
  /** Attempts per cycle: the first one plus retries. A manual retry grants this many again. */
  maxAttempts: z.int().min(1).max(10).default(3),
  /** Per-attempt timeout: connect, send, and the response headers. */
  timeoutMs: z.int().min(1).max(300_000).default(15_000),
  backoff: BackoffSchema.prefault({}),
  circuitBreaker: CircuitBreakerSchema.prefault({}),
});
export type DeliverySettings = z.infer<typeof DeliverySettingsSchema>;

export const WEBHOOK_ORDERINGS = ["Unordered", "Ordered"] as const;
export const WebhookOrderingSchema = z.enum(WEBHOOK_ORDERINGS);
export type WebhookOrdering = z.infer<typeof WebhookOrderingSchema>;

export const WebhookRouteSchema = z.object({
  /** The Webhook object's name; part of the delivery id. */
  name: z.string().regex(KUBERNETES_NAME, "a Kubernetes object name"),
  /** The Webhook object's metadata.uid. */
  uid: z.string().default(""),
  event: EventTypeSchema,
  url: z.url({ protocol: /^https?$/, error: "an http(s) URL" }),
  paused: z.boolean().default(false),
  /**
   * `Ordered`: its deliveries go one at a time, in fan-out order, each SENT or FAILED before the
   * next is attempted (Keyspace.orderedQueue). `Unordered`: concurrently, as they come.
   */
  ordering: WebhookOrderingSchema.default("Unordered"),
  /**
   * The operator auto-paused the webhook (its endpoint failed for longer than the integration's
   * autoPause.after): its deliveries wait, QUEUED with their attempts unspent, until it is resumed.
   */
  autoPaused: z.boolean().default(false),
  /** Extra request headers. Reserved ones (webhook-*, content-type, user-agent, host…) are ignored. */
  headers: z.record(z.string().regex(HEADER_NAME, "an HTTP header name"), z.string()).default({}),
  /**
   * A CEL expression over the notification (event-filter.ts): only events it is true for are
   * delivered. The operator writes only expressions that compile; a dispatcher compiles each once
   * per routing revision (one that does not compile there delivers nothing: it fails closed).
   */
  filter: z.string().max(MAX_FILTER_LENGTH).optional(),
});
export type WebhookRoute = z.infer<typeof WebhookRouteSchema>;

const TokenDigestsSchema = z
  .array(z.string().regex(/^[0-9a-f]{64}$/, "a SHA-256 hex digest"))
  .max(10)
  .default([]);

export const NamespaceRoutingSchema = z.object({
  namespace: z.string().regex(NAMESPACE_NAME, "a Kubernetes namespace name"),
  /** The integration toggle: no webhook of a disabled namespace delivers. */
  enabled: z.boolean(),
  delivery: DeliverySettingsSchema.prefault({}),
  /** `whsec_…` or `whsk_…`; several while rotating or switching schemes (each signs every message). */
  signingSecrets: z.array(SigningSecretSchema).min(1).max(10),
  /** Allow `http://` URLs (otherwise only https is delivered). */
  allowPlainHttp: z.boolean().default(false),
  webhooks: z.array(WebhookRouteSchema).default([]),
  /**
   * SHA-256 (hex) of the namespace's own ingest tokens: a bearer token whose digest is here
   * publishes into this namespace only. Digests, not tokens: RedisClient never holds a usable token.
   */
  ingestTokenDigests: TokenDigestsSchema,
  /**
   * SHA-256 (hex) of the namespace's own event log tokens: they list, show and retry this
   * namespace's deliveries only, in the dispatcher's event log API.
   */
  eventLogTokenDigests: TokenDigestsSchema,
  /** The WebhookIntegration's metadata.generation this was compiled from (informational). */
  generation: z.int().nonnegative().optional(),
  /** An opaque version of the operator's inputs (informational). */
  revision: z.string().optional(),
});
/** The decoded form, defaults applied. */
export type NamespaceRouting = z.infer<typeof NamespaceRoutingSchema>;
/** What a writer may pass: defaults may be omitted. */
export type NamespaceRoutingInput = z.input<typeof NamespaceRoutingSchema>;

export interface RoutingTable {
  /** The revision read together with the documents. */
  readonly revision: number;
  readonly namespaces: ReadonlyMap<string, NamespaceRouting>;
  /** Documents that failed validation; their namespaces route nothing. */
  readonly invalid: ReadonlyArray<{ namespace: string; error: string }>;
  /** The operator's routing epoch (Keyspace.routingEpoch); null when absent. */
  readonly epoch: string | null;
}

/**
 * Validates and stores one namespace's routing, its signing secrets and header values sealed
 * (secret-box.ts), then bumps the revision and notifies dispatchers (atomically). Returns the new
 * revision.
 */
export async function writeNamespaceRouting(
  redis: RedisClient,
  routing: NamespaceRoutingInput,
  keys: Keyspace,
  box: SecretBox,
): Promise<number> {
  const parsed = NamespaceRoutingSchema.parse(routing);
  const stored = JSON.stringify(sealRouting(parsed, box));
  const revision = await withoutArguments(() =>
    runScript(
      redis,
      writeRoutingScript,
      [keys.routing, keys.routingRevision],
      [parsed.namespace, stored, keys.routingChannel],
    ),
  );
  return Number(revision);
}

/** One namespace's stored routing, opened; `sealedWithOlderKey`: due for a rewrite after a key rotation. */
export async function readNamespaceRouting(
  redis: RedisClient,
  namespace: string,
  keys: Keyspace,
  box: SecretBox,
): Promise<{ routing: NamespaceRouting | undefined; sealedWithOlderKey: boolean } | null> {
  const json = await redis.hget(keys.routing, namespace);
  if (json === null) return null;
  const result = parseRoutingDocument(json, namespace, box);
  return result.success
    ? { routing: result.data, sealedWithOlderKey: result.sealedWithOlderKey }
    : { routing: undefined, sealedWithOlderKey: false };
}

/** What a webhook's route says, without its header values; `enabled`: its namespace's toggle. */
export interface WebhookRouteSummary {
  enabled: boolean;
  delivery: DeliverySettings;
  route: Omit<WebhookRoute, "headers">;
}

const PublicRoutingSchema = NamespaceRoutingSchema.pick({
  namespace: true,
  enabled: true,
  delivery: true,
  webhooks: true,
});

/**
 * One webhook's route as the dispatchers have it (null: no routing for the namespace, or no such
 * webhook in it: deleted, gone, or not deliverable), read without opening any sealed value: for
 * the operator's replay, which needs a webhook's URL and settings, never a secret.
 */
export async function readWebhookRoute(
  redis: RedisClient,
  namespace: string,
  webhook: string,
  keys: Keyspace,
): Promise<WebhookRouteSummary | null> {
  const json = await redis.hget(keys.routing, namespace);
  if (json === null) return null;
  let stored: unknown;
  try {
    stored = JSON.parse(json);
  } catch {
    return null;
  }
  const parsed = PublicRoutingSchema.safeParse(stored);
  if (!parsed.success) return null;
  const found = parsed.data.webhooks.find((route) => route.name === webhook);
  if (!found) return null;
  const { headers: _sealed, ...route } = found;
  return { enabled: parsed.data.enabled, delivery: parsed.data.delivery, route };
}

/** The additional authenticated data of a namespace's sealed values: they open only there. */
function sealContext(namespace: string): string {
  return `routing/${namespace}`;
}

/** The stored form of a document: the same JSON with every signing secret and header value sealed. */
function sealRouting(routing: NamespaceRouting, box: SecretBox): unknown {
  const context = sealContext(routing.namespace);
  return {
    ...routing,
    signingSecrets: routing.signingSecrets.map((secret) => box.seal(secret, context)),
    webhooks: routing.webhooks.map((webhook) => ({
      ...webhook,
      headers: Object.fromEntries(
        Object.entries(webhook.headers).map(([name, value]) => [name, box.seal(value, context)]),
      ),
    })),
  };
}

const StoredSecretsSchema = z.looseObject({
  signingSecrets: z.array(z.string()),
  webhooks: z.array(z.looseObject({ headers: z.record(z.string(), z.string()).optional() })).optional(),
});

/** Opens the sealed values of a stored document (throws when one does not authenticate). */
function openRouting(
  stored: unknown,
  namespace: string,
  box: SecretBox,
): { value: unknown; keyIds: Set<string> } {
  const document = StoredSecretsSchema.parse(stored);
  const context = sealContext(namespace);
  const keyIds = new Set<string>();
  const open = (sealed: string) => {
    keyIds.add(box.keyIdOf(sealed) ?? "");
    return box.open(sealed, context);
  };
  return {
    keyIds,
    value: {
      ...document,
      signingSecrets: document.signingSecrets.map(open),
      webhooks: document.webhooks?.map((webhook) => ({
        ...webhook,
        headers: Object.fromEntries(
          Object.entries(webhook.headers ?? {}).map(([name, value]) => [name, open(value)]),
        ),
      })),
    },
  };
}

/** Removes one namespace's routing (its webhooks stop delivering); bumps and announces the revision. */
export async function deleteNamespaceRouting(
  redis: RedisClient,
  namespace: string,
  keys: Keyspace,
): Promise<number> {
  const revision = await withoutArguments(() =>
    runScript(
      redis,
      writeRoutingScript,
      [keys.routing, keys.routingRevision],
      [namespace, "", keys.routingChannel],
    ),
  );
  return Number(revision);
}

/**
 * ioredis attaches a failed command's arguments to its error (`err.command.args`): here the
 * routing JSON, signing secrets and header values included. Rethrows the message only, so
 * no logger can print them.
 */
async function withoutArguments<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw new Error(`routing write failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export async function readRoutingRevision(redis: RedisClient, keys: Keyspace): Promise<number> {
  return Number((await redis.get(keys.routingRevision)) ?? 0);
}

/** Reads every namespace's routing together with the revision they belong to, secrets opened. */
export async function readRoutingTable(
  redis: RedisClient,
  keys: Keyspace,
  box: SecretBox,
): Promise<RoutingTable> {
  const replies = await redis
    .multi()
    .get(keys.routingRevision)
    .hgetall(keys.routing)
    .get(keys.routingEpoch)
    .exec();
  if (replies === null) throw new Error("routing read transaction was aborted");
  const [revisionReply, documentsReply, epochReply] = replies;
  if (revisionReply?.[0]) throw revisionReply[0];
  if (documentsReply?.[0]) throw documentsReply[0];
  if (epochReply?.[0]) throw epochReply[0];
  const documents = (documentsReply?.[1] ?? {}) as Record<string, string>;
  const namespaces = new Map<string, NamespaceRouting>();
  const invalid: Array<{ namespace: string; error: string }> = [];
  for (const [namespace, json] of Object.entries(documents)) {
    const result = parseRoutingDocument(json, namespace, box);
    if (result.success && result.data.namespace === namespace) namespaces.set(namespace, result.data);
    else
      invalid.push({ namespace, error: result.success ? "namespace does not match its key" : result.error });
  }
  const epoch = (epochReply?.[1] as string | null | undefined) ?? null;
  return { revision: Number(revisionReply?.[1] ?? 0), namespaces, invalid, epoch };
}

function parseRoutingDocument(
  json: string,
  namespace: string,
  box: SecretBox,
):
  | { success: true; data: NamespaceRouting; sealedWithOlderKey: boolean }
  | { success: false; error: string } {
  let opened: { value: unknown; keyIds: Set<string> };
  try {
    opened = openRouting(JSON.parse(json), namespace, box);
  } catch (error) {
    // the message never carries a value: JSON.parse and the box say what, not what was there
    const what = error instanceof z.ZodError ? z.prettifyError(error) : (error as Error).message;
    return { success: false, error: `unreadable: ${what}` };
  }
  const result = NamespaceRoutingSchema.safeParse(opened.value);
  if (!result.success) return { success: false, error: z.prettifyError(result.error) };
  const sealedWithOlderKey = [...opened.keyIds].some((id) => id !== box.currentKeyId);
  return { success: true, data: result.data, sealedWithOlderKey };
}

/** The digest under which a namespace's token is stored in a routing document (`…TokenDigests`). */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
