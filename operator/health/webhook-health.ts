import type { EndpointHealth } from "../../contract/endpoint-health.ts";
import type { WebhookHealth, WebhookStatus } from "../api/v1alpha1/index.ts";

// A webhook's status.health and its auto-pause, decided from what the dispatchers published
// (contract/endpoint-health.ts) and the webhook's own status. Pure: the reconciler feeds it.
//   auto-pause: the endpoint failed, with no success in between, for `autoPauseAfterMs` or more
//               (from the run's first failure, or the last resume if later, to its last failure:
//               evidence, not elapsed time, so a webhook with no traffic is never paused)
//   it stays auto-paused while its Ready condition says EndpointUnhealthy for the current
//   generation, until a resume: a spec change (generation) or a new resume annotation token

export const ENDPOINT_UNHEALTHY = "EndpointUnhealthy";

export interface HealthInputs {
  /** The dispatchers' record of this webhook (its uid already checked), if any. */
  record: EndpointHealth | undefined;
  /** The integration's delivery.autoPause.after in ms; 0 = off. */
  autoPauseAfterMs: number;
  current: WebhookStatus | undefined;
  generation: number;
  /** The value of the resume annotation, if set. */
  resumeToken: string | undefined;
  nowMs: number;
}

export interface HealthDecision {
  health: WebhookHealth;
  /** The webhook is auto-paused (out of delivery, its deliveries held). */
  autoPaused: boolean;
  /** It became auto-paused by this decision. */
  newlyAutoPaused: boolean;
  /** It was auto-paused and is resumed by this decision. */
  resumed?: "annotation" | "spec";
  /** The resume token to record as handled (a new one, whether it resumed anything or not). */
  lastResumeToken?: string;
  /** How long the endpoint has been failing, for the message (ms). */
  failingForMs?: number;
}

export function decideHealth(inputs: HealthInputs): HealthDecision {
  const { record, current, generation, resumeToken, nowMs } = inputs;
  const ready = current?.conditions?.find((c) => c.type === "Ready");
  const wasAutoPaused = ready?.reason === ENDPOINT_UNHEALTHY;
  const newToken =
    resumeToken !== undefined && resumeToken !== "" && resumeToken !== current?.lastResumeToken;
  const pausedThisGeneration = wasAutoPaused && ready?.observedGeneration === generation;
  const resumed: HealthDecision["resumed"] = !wasAutoPaused
    ? undefined
    : !pausedThisGeneration
      ? "spec"
      : newToken
        ? "annotation"
        : undefined;
  const resumedAtMs = resumed ? nowMs : Date.parse(current?.health?.resumedAt ?? "") || undefined;

  const failing =
    record !== undefined && record.consecutiveFailures > 0 && record.firstFailureAt !== undefined;
  const runStart = failing ? Math.max(record.firstFailureAt ?? 0, resumedAtMs ?? 0) : undefined;
  const failingForMs =
    failing && runStart !== undefined && record.lastFailureAt !== undefined
      ? Math.max(0, record.lastFailureAt - runStart)
      : undefined;
  const stillPaused = pausedThisGeneration && !newToken;
  const newlyAutoPaused =
    !stillPaused &&
    inputs.autoPauseAfterMs > 0 &&
    failingForMs !== undefined &&
    failingForMs >= inputs.autoPauseAfterMs;
  const autoPaused = stillPaused || newlyAutoPaused;

  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  const health: WebhookHealth = {
    state: autoPaused ? "AutoPaused" : (record?.state ?? "Healthy"),
    ...(record
      ? {
          consecutiveFailures: record.consecutiveFailures,
          failureRatio: record.failureRatio,
        }
      : {}),
    ...optional("failingSince", iso(failing ? record?.firstFailureAt : undefined)),
    ...optional("lastFailureTime", iso(record?.lastFailureAt)),
    ...optional("lastFailureReason", record?.lastFailureReason),
    ...optional(
      "nextProbeTime",
      iso(!autoPaused && record?.state === "CircuitOpen" ? record.nextProbeAt : undefined),
    ),
    ...optional("resumedAt", iso(resumedAtMs)),
  };
  return {
    health,
    autoPaused,
    newlyAutoPaused,
    ...(resumed && !autoPaused ? { resumed } : {}),
    ...(newToken ? { lastResumeToken: resumeToken } : {}),
    ...(failingForMs === undefined ? {} : { failingForMs }),
  };
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}

/** A duration as people read it: 5d 2h, 3h 10m, 45s. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3_600), Math.floor((s % 3_600) / 60)];
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}
