import { randomBytes } from "node:crypto";
import type { V1Secret } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Keyspace } from "../../contract/keys.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { SecretBox } from "../../contract/secret-box.ts";
import { generateSigningKey, type SignatureScheme, schemeOf } from "../../contract/signing-keys.ts";
import {
  API_VERSION,
  INTEGRATION_NAME,
  SECRET_USAGE_LABEL,
  SECRET_USAGE_VALUE,
  type WebhookIntegration,
} from "../api/v1alpha1/index.ts";
import type { ApiWrites } from "../api-writes.ts";
import type { OperatorCaches } from "../caches.ts";
import { findCondition } from "../controller/conditions.ts";
import type { Reconciler } from "../controller/controller.ts";
import type { EventInput } from "../controller/events.ts";
import { standingConditions } from "../controller/kstatus-conditions.ts";
import { isConflict, isNotFound } from "../controller/kube.ts";
import { createMergePatch } from "../controller/status.ts";
import { INTEGRATIONS } from "../resources.ts";
import {
  DEFAULT_DEPENDENCY_GRACE_MS,
  EVENT_LOG_TOKEN_SECRET,
  type GeneratedSecret,
  gatherNamespaceInputs,
  INGEST_TOKEN_SECRET,
  recheckAfter,
  type SecretExists,
} from "./namespace-inputs.ts";
import { INTEGRATION_STANDING, IntegrationReason, planNamespace, standingOf, type Verdict } from "./plan.ts";
import { applyRouting } from "./routing.ts";

// The WebhookIntegration reconciler, keyed `<namespace>/default` whether or not the
// integration exists: it owns the namespace's routing in Redis (written, disabled or
// removed), the generated signing secret, and the integration's status.
//   observe: the namespace's integration, webhooks and Secrets from the caches
//   compare/act: compile them; write the routing when it differs from Redis
//   report: Ready (with Reconciling / Stalled for GitOps tools), observedGeneration, activeWebhooks;
//           an Event when Ready changes

export const GENERATED_SECRET_LABEL = "webhooks.dataforce.io/generated-signing-secret";

export const GENERATED_INGEST_TOKEN_LABEL = "webhooks.dataforce.io/generated-ingest-token";
export const GENERATED_EVENT_LOG_TOKEN_LABEL = "webhooks.dataforce.io/generated-event-log-token";

/** Labels of a Secret the operator generates: ours (`ownerLabel`), and consenting to be read by webhooks. */
function generatedLabels(ownerLabel: string): Record<string, string> {
  return {
    "app.kubernetes.io/managed-by": "dataforce-webhooks-operator",
    [ownerLabel]: "true",
    [SECRET_USAGE_LABEL]: SECRET_USAGE_VALUE,
  };
}

export interface IntegrationReconcilerDeps {
  caches: OperatorCaches;
  redis: RedisClient;
  keys: Keyspace;
  /** Seals the routing's secrets (Redis never holds them in clear). */
  box: SecretBox;
  writes: ApiWrites;
  generatedSecret: GeneratedSecret;
  secretExists: SecretExists;
  recordEvent(regarding: WebhookIntegration, input: EventInput): void;
  logger: Logger;
  /** How long a missing signing Secret is waited for before the integration is Stalled. */
  dependencyGraceMs?: number;
}

/** Every change in a namespace reconciles its integration key. */
export function integrationKey(namespace: string): string {
  return `${namespace}/${INTEGRATION_NAME}`;
}

export function integrationReconciler(deps: IntegrationReconcilerDeps): Reconciler {
  return async ({ namespace, name }) => {
    if (name !== INTEGRATION_NAME) return; // the CRD refuses other names; nothing routes them
    const integration = deps.caches.integrations.get(namespace, INTEGRATION_NAME);
    const live = integration && !integration.metadata.deletionTimestamp ? integration : undefined;

    // `spec` may be missing on a malformed object (reported InvalidSpec by planNamespace).
    const fresh: V1Secret[] = [];
    if (live && !live.spec?.signingSecretRef) {
      const signing = await ensureSigningKey(deps, live, live.spec?.signatureScheme ?? "v1");
      if (signing) fresh.push(signing);
    }
    if (live) {
      for (const spec of NAMESPACE_TOKENS) {
        const token = await ensureGeneratedSecret(deps, live, spec);
        if (token) fresh.push(token);
      }
    }
    const compiled = planNamespace(
      await gatherNamespaceInputs(deps.caches, namespace, deps.generatedSecret, deps.secretExists, { fresh }),
    );
    const change = await applyRouting(deps, namespace, compiled.routing);
    if (change === "written" || change === "deleted") {
      deps.logger.info({ namespace, routing: change }, "routing updated");
    }
    if (!live || !compiled.integration) return;
    const graceLeftMs = await writeStatus(deps, live, compiled.integration);
    return recheckAfter(compiled.integration.ready.reason, graceLeftMs);
  };
}

/** Writes what differs; returns how long a Waiting verdict has left before it stalls. */
async function writeStatus(
  deps: IntegrationReconcilerDeps,
  integration: WebhookIntegration,
  result: NonNullable<ReturnType<typeof planNamespace>["integration"]>,
): Promise<number | undefined> {
  const generation = integration.metadata.generation ?? 0;
  const current = integration.status ?? {};
  const previous = findCondition(current.conditions, "Ready");
  const { conditions, recheckAfterMs } = standingConditions(
    current.conditions,
    result.ready,
    standingOf(INTEGRATION_STANDING, result.ready.reason),
    { generation, graceMs: deps.dependencyGraceMs ?? DEFAULT_DEPENDENCY_GRACE_MS },
  );
  const desired = {
    ...current,
    observedGeneration: generation,
    conditions,
    activeWebhooks: result.activeWebhooks,
    ...(result.signingSecretName ? { signingSecretName: result.signingSecretName } : {}),
    // written once there is a v1a key; emptied (not dropped) when the last one goes
    ...(result.signingPublicKeys?.length || current.signingPublicKeys
      ? { signingPublicKeys: result.signingPublicKeys ?? [] }
      : {}),
    ...(result.ingestTokenSecretName ? { ingestTokenSecretName: result.ingestTokenSecretName } : {}),
    ...(result.eventLogTokenSecretName ? { eventLogTokenSecretName: result.eventLogTokenSecretName } : {}),
  };
  const patch = createMergePatch(current, desired) as Record<string, unknown> | undefined;
  if (!patch) return recheckAfterMs;
  try {
    await deps.writes.patchStatus(INTEGRATIONS, integration.metadata, patch);
  } catch (err) {
    if (isNotFound(err)) return undefined; // deleted meanwhile
    throw err;
  }
  const event = transitionEvent(previous, result.ready, result.activeWebhooks);
  if (event) deps.recordEvent(integration, event);
  return recheckAfterMs;
}

/** The Event worth recording when the Ready condition moves from `previous` to `next`. */
export function transitionEvent(
  previous: { status: string; reason: string } | undefined,
  next: Verdict,
  activeWebhooks: number,
): EventInput | undefined {
  if (previous?.status === next.status && previous.reason === next.reason) return undefined;
  if (next.reason === IntegrationReason.IntegrationDisabled) {
    return { type: "Normal", reason: "IntegrationDisabled", action: "Configure", note: next.message };
  }
  if (next.status === "True") {
    return {
      type: "Normal",
      reason: "IntegrationEnabled",
      action: "Configure",
      note: `delivering to ${activeWebhooks} webhook${activeWebhooks === 1 ? "" : "s"}`,
    };
  }
  if (next.status === "False") {
    return { type: "Warning", reason: next.reason, action: "Configure", note: next.message };
  }
  return undefined;
}

/** A Secret the operator generates for the integration, and what goes into it. */
interface GeneratedSecretSpec {
  name: string;
  key: string;
  value(): string;
  /** For the log and the Event: "a whsec_ signing secret". */
  what: string;
  eventReason: string;
  /** The label that marks it as the operator's. */
  ownerLabel: string;
}

/**
 * Creates an owned Secret with a generated value (the signing secret when the integration
 * references none; the namespace's ingest token) when it does not exist yet. Returns the Secret
 * when it was just created (or labelled).
 */
async function ensureGeneratedSecret(
  deps: IntegrationReconcilerDeps,
  integration: WebhookIntegration,
  generated: GeneratedSecretSpec,
): Promise<V1Secret | undefined> {
  const { namespace, uid } = integration.metadata;
  const { name, key } = generated;
  if (deps.caches.secrets.get(namespace, name)) return undefined;
  const secret: V1Secret = {
    apiVersion: "v1",
    kind: "Secret",
    type: "Opaque",
    metadata: {
      name,
      namespace,
      labels: generatedLabels(generated.ownerLabel),
      ...(uid
        ? {
            ownerReferences: [
              {
                apiVersion: API_VERSION,
                kind: "WebhookIntegration",
                name: INTEGRATION_NAME,
                uid,
                controller: true,
              },
            ],
          }
        : {}),
    },
    data: { [key]: Buffer.from(generated.value()).toString("base64") },
  };
  try {
    const created = await deps.writes.createSecret(namespace, secret);
    deps.logger.info({ namespace, secret: name }, `generated ${generated.what}`);
    deps.recordEvent(integration, {
      type: "Normal",
      reason: generated.eventReason,
      action: "Configure",
      note: `generated ${generated.what} into Secret ${name} (key ${key})`,
    });
    return created;
  } catch (err) {
    if (!isConflict(err)) throw err;
    // It exists but the (label-selected) cache does not show it: generated before the consent
    // label existed. Label it, if it is ours, so that the informer sees it from now on.
    return await deps.writes.labelGeneratedSecret(
      namespace,
      name,
      generatedLabels(generated.ownerLabel),
      generated.ownerLabel,
    );
  }
}

const GENERATED_KEYS: Record<SignatureScheme, { value(): string; what: string }> = {
  v1: { value: generateSigningSecret, what: "a whsec_ signing secret (v1)" },
  v1a: { value: () => generateSigningKey().privateKey, what: "a whsk_ ed25519 signing key (v1a)" },
};

/**
 * The generated signing Secret, with a key of `scheme`: created with one when missing; when it
 * holds keys of the other scheme only (the integration switched), a new key is put first and
 * the old ones stay, so that both sign until the user removes the old (receivers move at their
 * pace). Returns the Secret when it was written.
 */
async function ensureSigningKey(
  deps: IntegrationReconcilerDeps,
  integration: WebhookIntegration,
  scheme: SignatureScheme,
): Promise<V1Secret | undefined> {
  const { name, key } = deps.generatedSecret;
  const generated = GENERATED_KEYS[scheme];
  const created = await ensureGeneratedSecret(deps, integration, {
    name,
    key,
    ...generated,
    eventReason: "SigningSecretGenerated",
    ownerLabel: GENERATED_SECRET_LABEL,
  });
  if (created) return created;
  const { namespace } = integration.metadata;
  const current = deps.caches.secrets.get(namespace, name);
  const resourceVersion = current?.metadata?.resourceVersion;
  // only the operator's own Secret is changed, never one a user created under that name
  if (!current || !resourceVersion || current.metadata?.labels?.[GENERATED_SECRET_LABEL] === undefined)
    return;
  const keys = Buffer.from(current.data?.[key] ?? "", "base64")
    .toString()
    .split(/\s+/)
    .filter((k) => k !== "");
  if (keys.some((k) => schemeOf(k) === scheme)) return;
  const patched = await deps.writes.patchGeneratedSecretData(namespace, name, resourceVersion, {
    [key]: [generated.value(), ...keys].join(" "),
  });
  deps.logger.info({ namespace, secret: name, scheme }, "added a signing key of the new scheme");
  deps.recordEvent(integration, {
    type: "Normal",
    reason: "SigningKeyAdded",
    action: "Configure",
    note: `added ${generated.what} to Secret ${name} (key ${key}) beside the old key(s); all sign until you remove the old one from the Secret`,
  });
  return patched;
}

/** The namespace's own tokens: what each may do is the dispatcher's to enforce. */
const NAMESPACE_TOKENS: readonly GeneratedSecretSpec[] = [
  {
    ...INGEST_TOKEN_SECRET,
    value: generateNamespaceToken,
    what: "this namespace's own ingest token",
    eventReason: "IngestTokenGenerated",
    ownerLabel: GENERATED_INGEST_TOKEN_LABEL,
  },
  {
    ...EVENT_LOG_TOKEN_SECRET,
    value: generateNamespaceToken,
    what: "this namespace's own event log token",
    eventReason: "EventLogTokenGenerated",
    ownerLabel: GENERATED_EVENT_LOG_TOKEN_LABEL,
  },
];

/** A namespace token: 32 random bytes, base64url (43 characters). */
export function generateNamespaceToken(): string {
  return randomBytes(32).toString("base64url");
}

/** A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export function generateSigningSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}
