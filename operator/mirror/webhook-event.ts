import { createHash } from "node:crypto";
import type { Attempt, DeliveryRecord } from "../../contract/records.ts";
import {
  API_VERSION,
  type AttemptRecord,
  type CachedWebhookEvent,
  LABEL_EVENT_TYPE,
  LABEL_PHASE,
  LABEL_WEBHOOK,
  MAX_MIRRORED_ATTEMPTS,
  MAX_MIRRORED_PAYLOAD,
  type WebhookEvent,
  type WebhookEventStatus,
} from "../api/v1alpha1/index.ts";
import type { Condition } from "../controller/conditions.ts";
import { type ReadyVerdict, type Standing, standingConditions } from "../controller/kstatus-conditions.ts";

// How one delivery record of the dispatcher looks as a WebhookEvent, and which API
// writes bring an existing object (or none) there. Pure: the mirror does the I/O.

/** The attempts the status keeps (the CRD's maxItems); the dispatcher's log has them all. */
export const ATTEMPT_HISTORY_LIMIT = 50;
const ERROR_LIMIT = 1024;

export type MirrorMode = "All" | "FailedOnly" | "None";

/** An API write of the mirror, in the order they are made. */
export type MirrorWrite =
  | { verb: "create"; object: WebhookEvent }
  /** A JSON merge patch of `/status` (null removes a field). */
  | { verb: "patchStatus"; patch: { status: Record<string, unknown> } }
  /** A JSON merge patch of `metadata.labels`. */
  | { verb: "patchLabels"; patch: { metadata: { labels: Record<string, string> } } };

/**
 * Whether a delivery gets a WebhookEvent. An object that exists is always kept up to date
 * (a FAILED one followed through its retry); the mode decides only which ones are created.
 */
export function shouldMirror(mode: MirrorMode, phase: DeliveryRecord["phase"], exists: boolean): boolean {
  if (exists) return true;
  if (mode === "All") return true;
  if (mode === "FailedOnly") return phase === "FAILED";
  return false;
}

/**
 * The writes that make `existing` (from the informer cache; undefined when there is none)
 * show `record`. A delivery seen for the first time costs one create plus one status
 * write, whatever states it went through; a known one a status write, plus a label
 * write when its phase changed; an up-to-date one nothing.
 */
export function planMirrorWrites(
  existing: CachedWebhookEvent | undefined,
  record: DeliveryRecord,
  webhookUid: string,
  now: Date = new Date(),
): MirrorWrite[] {
  const status = desiredStatus(record, existing, now);
  const writes: MirrorWrite[] = [];
  if (!existing) {
    writes.push({ verb: "create", object: newWebhookEvent(record, webhookUid) });
    writes.push({ verb: "patchStatus", patch: statusPatch(status) });
    return writes;
  }
  if (!sameStatus(existing.status, status)) writes.push({ verb: "patchStatus", patch: statusPatch(status) });
  const labels = labelsFor(record);
  const stale = Object.entries(labels).filter(([key, value]) => existing.metadata.labels?.[key] !== value);
  if (stale.length > 0) {
    writes.push({ verb: "patchLabels", patch: { metadata: { labels: Object.fromEntries(stale) } } });
  }
  return writes;
}

export function newWebhookEvent(record: DeliveryRecord, webhookUid: string): WebhookEvent {
  return {
    apiVersion: API_VERSION,
    kind: "WebhookEvent",
    metadata: {
      name: record.id,
      namespace: record.namespace,
      labels: labelsFor(record),
      ownerReferences: [
        { apiVersion: API_VERSION, kind: "Webhook", name: record.webhook, uid: webhookUid, controller: true },
      ],
    },
    spec: {
      deliveryId: record.id,
      eventId: record.eventId,
      eventType: record.eventType,
      webhook: record.webhook,
      url: record.url,
      ...(validTime(record.occurredAt) ? { occurredAt: record.occurredAt } : {}),
      ...mirroredPayload(record.payload),
    },
  };
}

export function labelsFor(record: DeliveryRecord): Record<string, string> {
  return {
    [LABEL_WEBHOOK]: labelValue(record.webhook),
    [LABEL_EVENT_TYPE]: labelValue(record.eventType),
    [LABEL_PHASE]: record.phase,
  };
}

/** The status the operator owns; `lastRetryToken` belongs to the retry handler and is never set here. */
export function desiredStatus(
  record: DeliveryRecord,
  existing: CachedWebhookEvent | undefined,
  now: Date = new Date(),
): WebhookEventStatus {
  const last = record.attempts.at(-1);
  const attempts = Math.min(MAX_MIRRORED_ATTEMPTS, Math.max(record.attempts.length, last?.number ?? 0));
  const { ready, standing } = readyVerdict(record);
  const generation = existing?.metadata.generation ?? 1;
  const { conditions } = standingConditions(existing?.status?.conditions, ready, standing, {
    generation,
    graceMs: 0, // nothing is waited for: a delivery's standing follows its phase
    now,
  });
  return {
    observedGeneration: generation,
    phase: record.phase,
    attempts,
    maxAttempts: record.maxAttempts,
    attemptHistory: record.attempts.slice(-ATTEMPT_HISTORY_LIMIT).map(attemptRecord),
    ...(record.phase === "QUEUED" && record.nextAttemptAt ? { nextAttemptAt: record.nextAttemptAt } : {}),
    conditions,
  };
}

/**
 * Ready, and how GitOps tools should read the delivery: SENT is Current; QUEUED is in progress
 * (Reconciling); FAILED is Stalled (kstatus Failed, Argo CD Degraded) until a retry annotation
 * puts it back to QUEUED.
 */
function readyVerdict(record: DeliveryRecord): { standing: Standing; ready: ReadyVerdict } {
  const last = record.attempts.at(-1);
  const lastOutcome = last ? describeOutcome(last) : "";
  switch (record.phase) {
    case "SENT":
      return {
        standing: "Ready",
        ready: {
          status: "True",
          reason: "Sent",
          message: `delivered on attempt ${last?.number ?? 1}${lastOutcome ? ` (${lastOutcome})` : ""}`,
        },
      };
    case "FAILED":
      return {
        standing: "Stalled",
        ready: {
          status: "False",
          reason: "Failed",
          message: `${record.failureReason ?? "failed"} after ${record.cycleAttempts} of ${record.maxAttempts} attempts${lastOutcome ? `; last: ${lastOutcome}` : ""}; annotate ${"webhooks.dataforce.io/retry=<token>"} to retry`,
        },
      };
    default:
      return {
        standing: "Progressing",
        ready: {
          status: "False",
          reason: "Queued",
          message: `${record.cycleAttempts} of ${record.maxAttempts} attempts made${lastOutcome ? `; last: ${lastOutcome}` : ""}`,
        },
      };
  }
}

function describeOutcome(attempt: Attempt): string {
  if (attempt.statusCode !== undefined && attempt.error === undefined) return `HTTP ${attempt.statusCode}`;
  const parts = [attempt.statusCode === undefined ? undefined : `HTTP ${attempt.statusCode}`, attempt.error];
  return truncate(parts.filter((p) => p !== undefined).join(": ") || (attempt.errorCode ?? ""), 256);
}

function attemptRecord(attempt: Attempt): AttemptRecord {
  const error = attempt.error ?? attempt.errorCode;
  return {
    number: attempt.number,
    time: attempt.startedAt,
    durationMs: Math.min(3_600_000, Math.max(0, Math.round(attempt.durationMs))),
    ...(attempt.statusCode === undefined ? {} : { statusCode: attempt.statusCode }),
    ...(error === undefined ? {} : { error: truncate(error, ERROR_LIMIT) }),
  };
}

/** A merge patch that sets every field the mirror owns and removes the ones it no longer sets. */
/**
 * The writes that show a QUEUED WebhookEvent whose delivery record vanished from Redis (data
 * loss) as lost: FAILED, `Ready=False/Lost`. Its receiver may or may not have got it.
 */
export function planLostWrites(existing: CachedWebhookEvent, now: Date = new Date()): MirrorWrite[] {
  const { conditions } = standingConditions(
    existing.status?.conditions,
    {
      status: "False",
      reason: "Lost",
      message:
        "its record vanished from Redis (data loss) before it finished: it may or may not have reached the receiver; its payload is in spec.payload",
    },
    "Stalled", // nothing will deliver it: a user must look (and may publish it again)
    { generation: existing.metadata.generation ?? 1, graceMs: 0, now },
  );
  return [
    { verb: "patchStatus", patch: { status: { phase: "FAILED", nextAttemptAt: null, conditions } } },
    { verb: "patchLabels", patch: { metadata: { labels: { [LABEL_PHASE]: "FAILED" } } } },
  ];
}

function statusPatch(status: WebhookEventStatus): { status: Record<string, unknown> } {
  return { status: { ...status, nextAttemptAt: status.nextAttemptAt ?? null } };
}

/** Compares the fields the mirror owns (lastTransitionTime included: setCondition keeps it when unchanged). */
export function sameStatus(current: WebhookEventStatus | undefined, desired: WebhookEventStatus): boolean {
  if (!current) return false;
  const owned = (s: WebhookEventStatus) => ({
    observedGeneration: s.observedGeneration,
    phase: s.phase,
    attempts: s.attempts,
    maxAttempts: s.maxAttempts,
    attemptHistory: s.attemptHistory ?? [],
    nextAttemptAt: s.nextAttemptAt,
    conditions: normalizeConditions(s.conditions),
  });
  return JSON.stringify(owned(current)) === JSON.stringify(owned(desired));
}

function normalizeConditions(conditions: readonly Condition[] | undefined) {
  return (conditions ?? []).map((c) => ({
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message,
    observedGeneration: c.observedGeneration,
    lastTransitionTime: c.lastTransitionTime,
  }));
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** A valid label value: the value itself when it is one, else a readable prefix plus a hash. */
export function labelValue(value: string): string {
  if (value.length <= 63 && LABEL_VALUE.test(value)) return value;
  const hash = createHash("sha256").update(value).digest("hex").slice(0, 10);
  const prefix = value
    .slice(0, 52)
    .replace(/[^-A-Za-z0-9_.]/g, "-")
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  return prefix ? `${prefix}-${hash}` : hash;
}

function validTime(value: string): boolean {
  return !Number.isNaN(Date.parse(value));
}

function truncate(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max - 1)}…`;
}

/**
 * The payload as a WebhookEvent can hold it: whole, or its beginning marked truncated (the API
 * server refuses a longer one, and a refused create would be retried forever).
 */
function mirroredPayload(payload: string): { payload: string; payloadTruncated?: true } {
  if (payload.length <= MAX_MIRRORED_PAYLOAD) return { payload };
  return { payload: payload.slice(0, MAX_MIRRORED_PAYLOAD), payloadTruncated: true };
}
