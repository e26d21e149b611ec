import { filterError } from "../../contract/event-filter.ts";
import {
  type NamespaceRouting,
  tokenDigest,
  type WebhookRoute,
  WebhookRouteSchema,
} from "../../contract/routing-config.ts";
import {
  isValidSigningKey,
  publicKeyOf,
  SIGNING_KEY_FORMATS,
  schemeOf,
} from "../../contract/signing-keys.ts";
import {
  ANNOTATION_RESUME,
  durationToMs,
  SECRET_USAGE_LABEL,
  SECRET_USAGE_VALUE,
  type Webhook,
  type WebhookIntegration,
  type WebhookIntegrationSpec,
  WebhookIntegrationSpecSchema,
  type WebhookSpec,
  WebhookSpecSchema,
} from "../api/v1alpha1/index.ts";

import type { Standing } from "../controller/kstatus-conditions.ts";
import { EVENT_LOG_TOKEN_SECRET, type GeneratedSecret, INGEST_TOKEN_SECRET } from "./namespace-inputs.ts";

// The pure heart of the integration and webhook reconcilers: one namespace's objects
// (its WebhookIntegration, its Webhooks, the Secrets they reference) in, the dispatcher's
// routing document and every object's Ready verdict out. No I/O, so every rule is unit-tested.

/** Decoded `data` of the namespace's Secrets, by Secret name. */
export type SecretsByName = ReadonlyMap<string, Readonly<Record<string, string>>>;

export interface NamespaceInputs {
  namespace: string;
  integration: WebhookIntegration | undefined;
  webhooks: readonly Webhook[];
  secrets: SecretsByName;
  /** The Secret the operator generates when the integration references none. */
  generatedSecret: { name: string; key: string };
  /** Webhooks whose receiver just answered 410 Gone to their current URL (reported by the mirror). */
  endpointGone?: ReadonlySet<string>;
  /**
   * Webhooks the webhook reconciler just found unhealthy for longer than autoPause.after
   * (operator/health/webhook-health.ts); those whose status already says so count too.
   */
  autoPaused?: ReadonlySet<string>;
  /** Referenced Secrets that exist without the consent label (SECRET_USAGE_LABEL): never read. */
  unlabelledSecrets?: ReadonlySet<string>;
}

/** A Ready condition without the bookkeeping fields the reconciler adds. */
export interface Verdict {
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export type RoutingAction =
  /** Write this routing document. */
  | { action: "write"; routing: NamespaceRouting }
  /** Remove the namespace's routing: nothing delivers. */
  | { action: "delete" }
  /**
   * Leave the last routing written in place (the inputs are incomplete, e.g. a Secret is
   * missing), but only with the webhooks in `retain` (name → uid): deleted and paused
   * webhooks, and those whose receiver said 410 Gone, leave the stored document.
   */
  | { action: "keep"; retain: ReadonlyMap<string, string> };

export interface NamespacePlan {
  routing: RoutingAction;
  /** Absent when the namespace has no integration. */
  integration?: {
    ready: Verdict;
    activeWebhooks: number;
    signingSecretName?: string;
    /** `whpk_` of every v1a key that signs (empty for v1 only). */
    signingPublicKeys?: string[];
    ingestTokenSecretName?: string;
    eventLogTokenSecretName?: string;
  };
  /** Ready verdict of every webhook, by name. */
  webhooks: Map<string, Verdict>;
}

/** Webhook Ready reasons, as documented in the CRD. */
export const WebhookReason = {
  Active: "Active",
  IntegrationMissing: "IntegrationMissing",
  IntegrationDisabled: "IntegrationDisabled",
  SecretNotFound: "SecretNotFound",
  SecretNotLabelled: "SecretNotLabelled",
  SigningSecretPending: "SigningSecretPending",
  InvalidSpec: "InvalidSpec",
  InvalidFilter: "InvalidFilter",
  InsecureURL: "InsecureURL",
  Paused: "Paused",
  EndpointGone: "EndpointGone",
  EndpointUnhealthy: "EndpointUnhealthy",
} as const;

/** WebhookIntegration Ready reasons. */
export const IntegrationReason = {
  Active: "Active",
  IntegrationDisabled: "IntegrationDisabled",
  SecretNotFound: "SecretNotFound",
  SecretNotLabelled: "SecretNotLabelled",
  InvalidSigningSecret: "InvalidSigningSecret",
  SigningSecretPending: "SigningSecretPending",
  InvalidSpec: "InvalidSpec",
} as const;

/**
 * How each Webhook reason reads to GitOps tools (the README's status model): paused and
 * disabled are states the user asked for, so Ready=True; a missing Secret or integration may be
 * on its way in the same sync, so it is waited for before it counts as a failure. So is the
 * generated signing secret: it takes milliseconds, unless a Secret of that name that the
 * operator did not create is in the way, which only the user can clear.
 */
export const WEBHOOK_STANDING: Readonly<Record<keyof typeof WebhookReason, Standing>> = {
  Active: "Ready",
  Paused: "Ready",
  IntegrationDisabled: "Ready",
  SigningSecretPending: "Waiting",
  IntegrationMissing: "Waiting",
  SecretNotFound: "Waiting",
  SecretNotLabelled: "Waiting",
  InvalidSpec: "Stalled",
  InvalidFilter: "Stalled",
  InsecureURL: "Stalled",
  EndpointGone: "Stalled",
  // auto-paused: a deliberate stop by the operator that only a person undoes (resume annotation
  // or a spec change), so GitOps tools show it failed rather than waiting on it
  EndpointUnhealthy: "Stalled",
};

/** How each WebhookIntegration reason reads to GitOps tools. */
export const INTEGRATION_STANDING: Readonly<Record<keyof typeof IntegrationReason, Standing>> = {
  Active: "Ready",
  IntegrationDisabled: "Ready",
  SigningSecretPending: "Waiting",
  SecretNotFound: "Waiting",
  SecretNotLabelled: "Waiting",
  InvalidSigningSecret: "Stalled",
  InvalidSpec: "Stalled",
};

/** The standing of a reason in `table`; a reason it lacks is an error a user must look at. */
export function standingOf(table: Readonly<Record<string, Standing>>, reason: string): Standing {
  return (Object.hasOwn(table, reason) ? table[reason] : undefined) ?? "Stalled";
}

export function planNamespace(inputs: NamespaceInputs): NamespacePlan {
  const webhooks = new Map<string, Verdict>();
  const { integration } = inputs;
  const sortedWebhooks = [...inputs.webhooks].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));

  if (!integration) {
    for (const webhook of sortedWebhooks) {
      webhooks.set(
        webhook.metadata.name,
        notReady(
          WebhookReason.IntegrationMissing,
          `namespace ${inputs.namespace} has no WebhookIntegration named default; create one with spec.enabled: true`,
        ),
      );
    }
    return { routing: { action: "delete" }, webhooks };
  }

  const parsedSpec = WebhookIntegrationSpecSchema.safeParse(integration.spec ?? {});
  const retain = retainedWebhooks(sortedWebhooks, inputs.endpointGone);
  if (!parsedSpec.success) {
    const message = `invalid spec: ${parsedSpec.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`;
    for (const webhook of sortedWebhooks) {
      webhooks.set(
        webhook.metadata.name,
        notReady(WebhookReason.IntegrationMissing, `integration: ${message}`),
      );
    }
    // Switched off, however invalid the rest: nothing may keep delivering.
    const disabled = (integration.spec as { enabled?: unknown } | undefined)?.enabled === false;
    return {
      routing: disabled ? { action: "delete" } : { action: "keep", retain },
      integration: { ready: notReady(IntegrationReason.InvalidSpec, message), activeWebhooks: 0 },
      webhooks,
    };
  }
  const spec = parsedSpec.data;
  const signing = resolveSigningSecrets(spec, inputs);

  const routes: WebhookRoute[] = [];
  for (const webhook of sortedWebhooks) {
    const gone = inputs.endpointGone?.has(webhook.metadata.name) || reportedGone(webhook);
    const autoPaused = inputs.autoPaused?.has(webhook.metadata.name) || reportedAutoPaused(webhook);
    const { verdict, route } = compileWebhook(
      webhook,
      spec,
      signing,
      inputs.secrets,
      { gone, autoPaused },
      inputs.unlabelledSecrets,
    );
    webhooks.set(webhook.metadata.name, verdict);
    if (route) routes.push(route);
  }
  // paused and idle webhooks are Ready too, but only Active ones deliver
  const activeWebhooks = [...webhooks.values()].filter((v) => v.reason === WebhookReason.Active).length;

  if (!signing.ok) {
    // Without a signing secret no disabled routing can be written; deleting it stops delivery too.
    return {
      routing: spec.enabled ? { action: "keep", retain } : { action: "delete" },
      integration: {
        ready: signing.pending
          ? { status: "Unknown", reason: signing.reason, message: signing.message }
          : notReady(signing.reason, signing.message),
        activeWebhooks: 0,
        signingSecretName: signing.secretName,
      },
      webhooks,
    };
  }

  const routing: NamespaceRouting = {
    namespace: inputs.namespace,
    enabled: spec.enabled,
    delivery: {
      maxAttempts: spec.delivery.maxAttempts,
      timeoutMs: durationToMs(spec.delivery.timeout),
      backoff: {
        initialDelayMs: durationToMs(spec.delivery.backoff.initialDelay),
        maxDelayMs: durationToMs(spec.delivery.backoff.maxDelay),
        multiplier: spec.delivery.backoff.multiplier,
      },
      circuitBreaker: {
        consecutiveFailures: spec.delivery.circuitBreaker.consecutiveFailures,
        cooldownMs: durationToMs(spec.delivery.circuitBreaker.cooldown),
        maxCooldownMs: durationToMs(spec.delivery.circuitBreaker.maxCooldown),
      },
    },
    signingSecrets: signing.secrets,
    allowPlainHttp: spec.destinationPolicy.allowPlainHTTP,
    webhooks: routes,
    ingestTokenDigests: namespaceTokens(inputs, INGEST_TOKEN_SECRET).map(tokenDigest),
    eventLogTokenDigests: namespaceTokens(inputs, EVENT_LOG_TOKEN_SECRET).map(tokenDigest),
    ...(integration.metadata.generation === undefined ? {} : { generation: integration.metadata.generation }),
  };
  const ready: Verdict = spec.enabled
    ? {
        status: "True",
        reason: IntegrationReason.Active,
        message: `delivering: ${activeWebhooks} of ${sortedWebhooks.length} webhooks active`,
      }
    : {
        // switched off on purpose: the desired state, reached
        status: "True",
        reason: IntegrationReason.IntegrationDisabled,
        message: "spec.enabled is false: no webhook of this namespace delivers until it is true",
      };
  return {
    routing: { action: "write", routing },
    integration: {
      ready,
      activeWebhooks,
      signingSecretName: signing.secretName,
      signingPublicKeys: signing.secrets.filter((key) => schemeOf(key) === "v1a").map(publicKeyOf),
      ...(inputs.secrets.has(INGEST_TOKEN_SECRET.name)
        ? { ingestTokenSecretName: INGEST_TOKEN_SECRET.name }
        : {}),
      ...(inputs.secrets.has(EVENT_LOG_TOKEN_SECRET.name)
        ? { eventLogTokenSecretName: EVENT_LOG_TOKEN_SECRET.name }
        : {}),
    },
    webhooks,
  };
}

type SigningResolution =
  | { ok: true; secrets: string[]; secretName: string }
  | { ok: false; reason: string; message: string; secretName: string; pending?: boolean };

function resolveSigningSecrets(spec: WebhookIntegrationSpec, inputs: NamespaceInputs): SigningResolution {
  const ref = spec.signingSecretRef ?? inputs.generatedSecret;
  const data = inputs.secrets.get(ref.name);
  const where = `Secret ${ref.name} key ${ref.key}`;
  if (!data && !spec.signingSecretRef) {
    return {
      ok: false,
      pending: true,
      reason: IntegrationReason.SigningSecretPending,
      message: `generating the signing secret into Secret ${ref.name} (if this lasts, a Secret of that name that the operator did not create is in the way: delete it, or set spec.signingSecretRef)`,
      secretName: ref.name,
    };
  }
  if (!data && inputs.unlabelledSecrets?.has(ref.name)) {
    return {
      ok: false,
      reason: IntegrationReason.SecretNotLabelled,
      message: `signing secret: ${notLabelled(ref.name)}`,
      secretName: ref.name,
    };
  }
  if (!data) {
    return {
      ok: false,
      reason: IntegrationReason.SecretNotFound,
      message: `signing secret: Secret ${ref.name} not found`,
      secretName: ref.name,
    };
  }
  const value = data[ref.key];
  if (value === undefined) {
    return {
      ok: false,
      reason: IntegrationReason.SecretNotFound,
      message: `signing secret: ${where} not found`,
      secretName: ref.name,
    };
  }
  const secrets = value.split(/\s+/).filter((s) => s !== "");
  const invalid = secrets.length === 0 || secrets.length > 10 || !secrets.every(isValidSigningKey);
  if (invalid) {
    return {
      ok: false,
      reason: IntegrationReason.InvalidSigningSecret,
      message: `signing secret: ${where} must hold 1 to 10 space-separated keys, each ${SIGNING_KEY_FORMATS}`,
      secretName: ref.name,
    };
  }
  return { ok: true, secrets, secretName: ref.name };
}

/**
 * A webhook's route and verdict. The route is built whenever the webhook itself is
 * deliverable, also while the integration is disabled (the dispatcher then records its
 * events as not delivered); the verdict says why it does not deliver, integration first.
 */
function compileWebhook(
  webhook: Webhook,
  integration: WebhookIntegrationSpec,
  signing: SigningResolution,
  secrets: SecretsByName,
  endpoint: { gone: boolean; autoPaused: boolean },
  unlabelled: ReadonlySet<string> | undefined,
): { verdict: Verdict; route?: WebhookRoute } {
  const parsed = WebhookSpecSchema.safeParse(webhook.spec ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    return { verdict: notReady(WebhookReason.InvalidSpec, `invalid spec: ${issues}`) };
  }
  const spec: WebhookSpec = parsed.data;
  // the same compiler as the dispatcher's: what passes here compiles there
  const invalidFilter = spec.filter === undefined ? undefined : filterError(spec.filter);
  if (invalidFilter !== undefined) {
    return { verdict: notReady(WebhookReason.InvalidFilter, `spec.filter: ${invalidFilter}`) };
  }

  const headers: Record<string, string> = {};
  for (const header of spec.headers ?? []) {
    if (header.value !== undefined) {
      headers[header.name] = header.value;
      continue;
    }
    const ref = header.valueFrom?.secretKeyRef;
    const value = ref ? secrets.get(ref.name)?.[ref.key] : undefined;
    if (ref !== undefined && value === undefined && unlabelled?.has(ref.name)) {
      return {
        verdict: notReady(WebhookReason.SecretNotLabelled, `header ${header.name}: ${notLabelled(ref.name)}`),
      };
    }
    if (ref === undefined || value === undefined) {
      const what = ref ? `Secret ${ref.name} key ${ref.key}` : "its value";
      return {
        verdict: notReady(WebhookReason.SecretNotFound, `header ${header.name}: ${what} not found`),
      };
    }
    headers[header.name] = value;
  }

  if (spec.url.toLowerCase().startsWith("http://") && !integration.destinationPolicy.allowPlainHTTP) {
    return {
      verdict: notReady(
        WebhookReason.InsecureURL,
        "plain http:// URL refused: use https:// or set spec.destinationPolicy.allowPlainHTTP on the WebhookIntegration",
      ),
    };
  }

  const route: WebhookRoute = {
    name: webhook.metadata.name,
    uid: webhook.metadata.uid ?? "",
    event: spec.event,
    url: spec.url,
    paused: spec.paused,
    ordering: spec.ordering,
    autoPaused: false,
    headers,
    ...(spec.filter === undefined ? {} : { filter: spec.filter }),
  };
  const checked = WebhookRouteSchema.safeParse(route);
  if (!checked.success) {
    const issues = checked.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    return { verdict: notReady(WebhookReason.InvalidSpec, `not deliverable: ${issues}`) };
  }
  if (!integration.enabled) {
    return {
      route,
      verdict: {
        status: "True",
        reason: WebhookReason.IntegrationDisabled,
        message: "not delivering: the namespace's WebhookIntegration has spec.enabled: false",
      },
    };
  }
  if (!signing.ok && signing.pending) {
    return {
      route,
      verdict: {
        status: "Unknown",
        reason: WebhookReason.SigningSecretPending,
        message: "the operator is generating the namespace's signing secret",
      },
    };
  }
  if (!signing.ok) {
    return {
      route,
      verdict: notReady(
        WebhookReason.SecretNotFound,
        "the namespace's WebhookIntegration has no usable signing secret (see its Ready condition)",
      ),
    };
  }
  if (spec.paused) {
    return {
      route,
      verdict: {
        status: "True",
        reason: WebhookReason.Paused,
        message: "not delivering: spec.paused is true",
      },
    };
  }
  if (endpoint.gone) {
    // Left out of the routing: a receiver that says 410 Gone wants no more deliveries.
    return {
      verdict: notReady(
        WebhookReason.EndpointGone,
        "the receiver answered 410 Gone: deliveries stopped; change the webhook's spec (e.g. its url) to resume",
      ),
    };
  }
  if (endpoint.autoPaused) {
    // Kept in the routing, held: its deliveries wait QUEUED (attempts unspent) until a resume.
    return {
      route: { ...route, autoPaused: true },
      verdict: notReady(
        WebhookReason.EndpointUnhealthy,
        `auto-paused: the endpoint kept failing for longer than the integration's delivery.autoPause.after (see status.health); deliveries wait, QUEUED. Resume: kubectl annotate webhook ${webhook.metadata.name} ${ANNOTATION_RESUME}=<token> --overwrite, or change the spec`,
      ),
    };
  }
  return {
    route,
    verdict: { status: "True", reason: WebhookReason.Active, message: `delivering ${spec.event} events` },
  };
}

/** Webhooks that may stay in a kept routing document: existing, not paused, not gone (name → uid). */
function retainedWebhooks(
  webhooks: readonly Webhook[],
  endpointGone: ReadonlySet<string> | undefined,
): Map<string, string> {
  const retain = new Map<string, string>();
  for (const webhook of webhooks) {
    if (webhook.metadata.deletionTimestamp) continue;
    if ((webhook.spec as { paused?: unknown } | undefined)?.paused === true) continue;
    if (endpointGone?.has(webhook.metadata.name) || reportedGone(webhook)) continue;
    retain.set(webhook.metadata.name, webhook.metadata.uid ?? "");
  }
  return retain;
}

/** The webhook's own status says its endpoint is gone, for the spec it has now. */
function reportedGone(webhook: Webhook): boolean {
  const ready = webhook.status?.conditions?.find((c) => c.type === "Ready");
  return (
    ready?.reason === WebhookReason.EndpointGone && ready.observedGeneration === webhook.metadata.generation
  );
}

/**
 * The webhook's own status says the operator auto-paused it, for the spec it has now, and no
 * resume annotation token is waiting to be handled.
 */
export function reportedAutoPaused(webhook: Webhook): boolean {
  const ready = webhook.status?.conditions?.find((c) => c.type === "Ready");
  if (ready?.reason !== WebhookReason.EndpointUnhealthy) return false;
  if (ready.observedGeneration !== webhook.metadata.generation) return false;
  const token = webhook.metadata.annotations?.[ANNOTATION_RESUME];
  return token === undefined || token === "" || token === webhook.status?.lastResumeToken;
}

function notReady(reason: string, message: string): Verdict {
  return { status: "False", reason, message };
}

/** Why an existing Secret is not read, and the one command that consents to it. */
function notLabelled(secretName: string): string {
  return `Secret ${secretName} is not labelled ${SECRET_USAGE_LABEL}=${SECRET_USAGE_VALUE}, so webhooks may not read it (kubectl label secret ${secretName} ${SECRET_USAGE_LABEL}=${SECRET_USAGE_VALUE})`;
}

/** The namespace's own tokens of one kind (none until the operator has generated them). */
function namespaceTokens(inputs: NamespaceInputs, secret: GeneratedSecret): string[] {
  const value = inputs.secrets.get(secret.name)?.[secret.key] ?? "";
  return value
    .split(/\s+/)
    .filter((token) => token.length >= 16)
    .slice(0, 10);
}
