import type { Logger } from "pino";
import type { EndpointHealth } from "../../contract/endpoint-health.ts";
import {
  ANNOTATION_RESUME,
  durationToMs,
  INTEGRATION_NAME,
  type Webhook,
  type WebhookHealth,
  WebhookIntegrationSpecSchema,
  type WebhookStatus,
} from "../api/v1alpha1/index.ts";
import type { ApiWrites } from "../api-writes.ts";
import type { OperatorCaches } from "../caches.ts";
import { findCondition } from "../controller/conditions.ts";
import type { Reconciler } from "../controller/controller.ts";
import type { EventInput } from "../controller/events.ts";
import { standingConditions } from "../controller/kstatus-conditions.ts";
import { isNotFound } from "../controller/kube.ts";
import { createMergePatch } from "../controller/status.ts";
import { decideHealth, humanDuration } from "../health/webhook-health.ts";
import { WEBHOOKS } from "../resources.ts";
import {
  DEFAULT_DEPENDENCY_GRACE_MS,
  type GeneratedSecret,
  gatherNamespaceInputs,
  recheckAfter,
  type SecretExists,
} from "./namespace-inputs.ts";
import { planNamespace, standingOf, type Verdict, WEBHOOK_STANDING, WebhookReason } from "./plan.ts";

// The Webhook reconciler, keyed `<namespace>/<name>`: the webhook's Ready verdict comes
// from the same compilation the integration reconciler writes to Redis, so status and
// routing never disagree about why a webhook does (not) deliver.
//   observe: the namespace's objects from the caches, the last delivery the mirror saw
//           and its endpoint health as the dispatchers published it (health/health-poller.ts)
//   decide: auto-pause (health/webhook-health.ts) or resume (spec change, resume annotation)
//   report: Ready (with Reconciling / Stalled for GitOps tools), observedGeneration, lastDelivery,
//           health, lastResumeToken; an Event when Ready changes

export type LastDelivery = NonNullable<WebhookStatus["lastDelivery"]>;

/** A delivery's state as the mirror saw it. */
export interface DeliveryObservation {
  namespace: string;
  webhook: string;
  deliveryId: string;
  eventId: string;
  phase: LastDelivery["phase"];
  /** ISO time of the state change. */
  time: string;
  statusCode?: number;
  /** Why it FAILED, when it did (dispatcher's FailureReason). */
  failureReason?: string;
  /** The URL it was delivered to, when known. */
  url?: string;
}

/** The most recent delivery of every webhook, as the mirror reports them. */
export class LastDeliveries {
  private readonly byWebhook = new Map<string, LastDelivery>();
  /** Webhooks whose receiver answered 410 Gone, with the URL it was said for ("" when unknown). */
  private readonly gone = new Map<string, string>();

  /** Records `observation` unless an later one is known; returns the webhook's key when it changed. */
  observe(observation: DeliveryObservation): string | undefined {
    const key = `${observation.namespace}/${observation.webhook}`;
    if (observation.failureReason === "endpoint-gone") this.gone.set(key, observation.url ?? "");
    const known = this.byWebhook.get(key);
    if (known && Date.parse(known.time) > Date.parse(observation.time)) return undefined;
    const summary: LastDelivery = {
      deliveryId: observation.deliveryId,
      eventId: observation.eventId,
      phase: observation.phase,
      time: observation.time,
      ...(observation.statusCode === undefined ? {} : { statusCode: observation.statusCode }),
    };
    if (known && JSON.stringify(known) === JSON.stringify(summary)) return undefined;
    this.byWebhook.set(key, summary);
    return key;
  }

  get(key: string): LastDelivery | undefined {
    return this.byWebhook.get(key);
  }

  /** Whether a 410 Gone was reported for `url` (or an unknown URL) and not yet taken. */
  isGone(key: string, url: string): boolean {
    const goneUrl = this.gone.get(key);
    return goneUrl !== undefined && (goneUrl === "" || goneUrl === url);
  }

  /** The 410 Gone is now recorded in the webhook's status (the lasting record). */
  clearGone(key: string): void {
    this.gone.delete(key);
  }

  forget(key: string): void {
    this.byWebhook.delete(key);
    this.gone.delete(key);
  }
}

export interface WebhookReconcilerDeps {
  caches: OperatorCaches;
  writes: ApiWrites;
  generatedSecret: GeneratedSecret;
  lastDeliveries: LastDeliveries;
  secretExists: SecretExists;
  recordEvent(regarding: Webhook, input: EventInput): void;
  logger: Logger;
  /** How long a missing Secret or integration is waited for before the webhook is Stalled. */
  dependencyGraceMs?: number;
  /** The dispatchers' endpoint health of `<namespace>/<name>` (absent: none known). */
  health?: {
    /** false until the records were read once (a new leader): status.health is then left as it is */
    readonly loaded: boolean;
    get(key: string, uid: string | undefined): EndpointHealth | undefined;
  };
  /** Counts webhooks the operator auto-paused. */
  onAutoPaused?: () => void;
  now?: () => number;
}

export function webhookReconciler(deps: WebhookReconcilerDeps): Reconciler {
  return async ({ key, namespace, name }) => {
    const webhook = deps.caches.webhooks.get(namespace, name);
    if (!webhook || webhook.metadata.deletionTimestamp) {
      deps.lastDeliveries.forget(key);
      return;
    }
    const gone = deps.lastDeliveries.isGone(key, webhook.spec.url);
    const generation = webhook.metadata.generation ?? 0;
    const current = webhook.status ?? {};
    const health = decideHealth({
      record: deps.health?.get(key, webhook.metadata.uid),
      autoPauseAfterMs: autoPauseAfterMs(deps, namespace),
      current,
      generation,
      resumeToken: webhook.metadata.annotations?.[ANNOTATION_RESUME],
      nowMs: (deps.now ?? Date.now)(),
    });
    const compiled = planNamespace({
      ...(await gatherNamespaceInputs(deps.caches, namespace, deps.generatedSecret, deps.secretExists, {
        webhook: name,
      })),
      ...(gone ? { endpointGone: new Set([name]) } : {}),
      ...(health.autoPaused ? { autoPaused: new Set([name]) } : {}),
    });
    let verdict = compiled.webhooks.get(name);
    if (!verdict) return;
    if (verdict.reason === WebhookReason.EndpointUnhealthy && health.failingForMs !== undefined) {
      const last = health.health.lastFailureReason ? `, last: ${health.health.lastFailureReason}` : "";
      verdict = {
        ...verdict,
        message: `the endpoint failed for ${humanDuration(health.failingForMs)} without a success${last}; ${verdict.message}`,
      };
    }
    // the health the status shows matches the verdict: AutoPaused only while Ready says so
    const record = deps.health?.get(key, webhook.metadata.uid);
    const shownHealth =
      health.health.state === "AutoPaused" && verdict.reason !== WebhookReason.EndpointUnhealthy
        ? { ...health.health, state: record?.state ?? "Healthy" }
        : health.health;
    // absent until the dispatchers report a failure: no status write for every healthy webhook
    const showHealth = record !== undefined || current.health !== undefined || health.autoPaused;
    const healthKnown = deps.health?.loaded ?? true;
    const previous = findCondition(current.conditions, "Ready");
    const lastDelivery = deps.lastDeliveries.get(key) ?? current.lastDelivery;
    const { conditions, recheckAfterMs } = standingConditions(
      current.conditions,
      verdict,
      standingOf(WEBHOOK_STANDING, verdict.reason),
      { generation, graceMs: deps.dependencyGraceMs ?? DEFAULT_DEPENDENCY_GRACE_MS },
    );
    const recheck = recheckAfter(verdict.reason, recheckAfterMs);
    const desired = {
      ...current,
      observedGeneration: generation,
      conditions,
      ...(lastDelivery ? { lastDelivery } : {}),
      ...(healthKnown
        ? showHealth
          ? { health: shownHealth }
          : {}
        : keptHealth(current.health, health.health)),
      ...(health.lastResumeToken === undefined ? {} : { lastResumeToken: health.lastResumeToken }),
    };
    const patch = createMergePatch(current, desired) as Record<string, unknown> | undefined;
    if (!patch) {
      if (gone) deps.lastDeliveries.clearGone(key);
      return recheck;
    }
    try {
      await deps.writes.patchStatus(WEBHOOKS, webhook.metadata, patch);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (gone) deps.lastDeliveries.clearGone(key);
    const event = readyEvent(previous, verdict);
    if (event) deps.recordEvent(webhook, event);
    if (event && verdict.reason === WebhookReason.EndpointUnhealthy) deps.onAutoPaused?.();
    if (health.resumed) {
      deps.logger.info({ namespace, name, by: health.resumed }, "auto-paused webhook resumed");
    }
    return recheck;
  };
}

/**
 * When Ready changes status or reason (not for Unknown): WebhookReady once it delivers,
 * WebhookNotDelivering (Normal) when paused or its integration is disabled on purpose,
 * WebhookNotReady (Warning) for a problem.
 */
export function readyEvent(
  previous: { status: string; reason: string } | undefined,
  next: Verdict,
): EventInput | undefined {
  if (next.status === "Unknown") return undefined;
  if (previous?.status === next.status && previous.reason === next.reason) return undefined;
  if (next.reason === WebhookReason.EndpointUnhealthy) {
    return { type: "Warning", reason: "EndpointUnhealthy", action: "AutoPause", note: next.message };
  }
  if (next.status === "True" && next.reason === WebhookReason.Active) {
    return {
      type: "Normal",
      reason: "WebhookReady",
      action: "Configure",
      note: next.message || "delivering",
    };
  }
  return {
    type: next.status === "True" ? "Normal" : "Warning",
    reason: next.status === "True" ? "WebhookNotDelivering" : "WebhookNotReady",
    action: "Configure",
    note: `${next.reason}: ${next.message}`,
  };
}

/** The namespace integration's delivery.autoPause.after, in ms (0: off; the default when unreadable). */
function autoPauseAfterMs(deps: Pick<WebhookReconcilerDeps, "caches">, namespace: string): number {
  const integration = deps.caches.integrations.get(namespace, INTEGRATION_NAME);
  const spec = WebhookIntegrationSpecSchema.safeParse(integration?.spec ?? {});
  return durationToMs(spec.success ? spec.data.delivery.autoPause.after : "120h");
}

/** Before the first read of the records: the health shown stays, with a resume's time recorded. */
function keptHealth(current: WebhookHealth | undefined, decided: WebhookHealth): { health?: WebhookHealth } {
  if (current === undefined && decided.resumedAt === undefined) return {};
  return {
    health: {
      ...(current ?? { state: "Healthy" }),
      ...(decided.resumedAt === undefined ? {} : { resumedAt: decided.resumedAt }),
    },
  };
}
