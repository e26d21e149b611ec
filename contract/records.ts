import { z } from "zod";
import { EventTypeSchema } from "./event-types.ts";

// The shapes of every record the dispatcher keeps in Redis. Hashes store strings only: the
// `…HashSchema`s describe the stored form, the `…Schema`s the decoded form callers use.

export const DELIVERY_PHASES = ["QUEUED", "SENT", "FAILED"] as const;
export const DeliveryPhaseSchema = z.enum(DELIVERY_PHASES);
export type DeliveryPhase = z.infer<typeof DeliveryPhaseSchema>;

/** Why a delivery ended FAILED. Bounded: also a metric label. */
export const FAILURE_REASONS = [
  /** every attempt of the budget failed */
  "attempts-exhausted",
  /** the receiver answered 410 Gone: the endpoint no longer exists */
  "endpoint-gone",
  /** the receiver answered with `webhook-delivery: abort-message` */
  "aborted-by-receiver",
  /** the URL is not allowed (plain http, or resolves to a refused address range) */
  "destination-refused",
  /** the namespace's integration was disabled or removed before the attempt */
  "integration-disabled",
  /** the webhook was deleted before the attempt */
  "webhook-removed",
  /** the webhook was paused before the attempt */
  "webhook-paused",
] as const;
export const FailureReasonSchema = z.enum(FAILURE_REASONS);
export type FailureReason = z.infer<typeof FailureReasonSchema>;

/** Stable codes of a failed attempt. Bounded: also a metric label (with `success`). */
export const ATTEMPT_ERROR_CODES = [
  "http_status",
  "redirect",
  "timeout",
  "connection_refused",
  "connection_reset",
  "dns_failure",
  "destination_refused",
  "tls_error",
  "network_error",
] as const;
export const AttemptErrorCodeSchema = z.enum(ATTEMPT_ERROR_CODES);
export type AttemptErrorCode = z.infer<typeof AttemptErrorCodeSchema>;

export const AttemptSchema = z.object({
  /** 1-based, counted across retry cycles. */
  number: z.int().positive(),
  startedAt: z.iso.datetime(),
  durationMs: z.number().nonnegative(),
  statusCode: z.int().optional(),
  errorCode: AttemptErrorCodeSchema.optional(),
  /** Human-readable; never contains secrets or signatures. */
  error: z.string().optional(),
  /** The first bytes (≤ 1 KiB) of the response body. */
  responseBodyPrefix: z.string().optional(),
});
export type Attempt = z.infer<typeof AttemptSchema>;

/**
 * A delivery: one event to one webhook. `id` is also the `webhook-id` header and the name of the
 * operator's WebhookEvent object (see delivery-id.ts).
 */
export const DeliveryRecordSchema = z.object({
  id: z.string(),
  eventId: z.string(),
  eventType: EventTypeSchema,
  namespace: z.string(),
  webhook: z.string(),
  webhookUid: z.string(),
  /** The URL of the latest attempt (the webhook's URL when the delivery was created, until then). */
  url: z.string(),
  /** The exact JSON body sent (the same bytes on every attempt). */
  payload: z.string(),
  phase: DeliveryPhaseSchema,
  attempts: z.array(AttemptSchema),
  /** The attempt budget of one cycle (the integration's `delivery.maxAttempts`). */
  maxAttempts: z.int().positive(),
  /** 1 for the first cycle, +1 for every honoured retry request. */
  cycle: z.int().positive(),
  /** Attempts made in the current cycle (≤ maxAttempts). */
  cycleAttempts: z.int().nonnegative(),
  occurredAt: z.iso.datetime({ offset: true }),
  ingestedAt: z.iso.datetime(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  nextAttemptAt: z.iso.datetime().optional(),
  failureReason: FailureReasonSchema.optional(),
  lastRetryToken: z.string().optional(),
  /** Why the operator could not show this delivery as a WebhookEvent (the API server refused it). */
  mirrorError: z.string().optional(),
  /** Bumped by every state change; guards against two workers recording the same attempt. */
  version: z.int().nonnegative(),
});
export type DeliveryRecord = z.infer<typeof DeliveryRecordSchema>;

const epochMs = z.string().regex(/^\d+$/).transform(Number);
const isoFromEpochMs = epochMs.transform((ms) => new Date(ms).toISOString());
const optionalIsoFromEpochMs = z
  .string()
  .optional()
  .transform((value) => (value ? new Date(Number(value)).toISOString() : undefined));
const optionalString = z
  .string()
  .optional()
  .transform((value) => (value ? value : undefined));

/** The stored form of a delivery (hash `delivery:<id>`). */
export const DeliveryHashSchema = z.object({
  id: z.string(),
  eventId: z.string(),
  eventType: z.string(),
  namespace: z.string(),
  webhook: z.string(),
  webhookUid: z.string().default(""),
  url: z.string(),
  payload: z.string(),
  phase: z.string(),
  attempts: z.string().transform((json) => JSON.parse(json) as unknown),
  maxAttempts: epochMs,
  cycle: epochMs,
  cycleAttempts: epochMs,
  occurredAt: z.string(),
  ingestedAt: isoFromEpochMs,
  createdAt: isoFromEpochMs,
  updatedAt: isoFromEpochMs,
  nextAttemptAt: optionalIsoFromEpochMs,
  failureReason: optionalString,
  lastRetryToken: optionalString,
  mirrorError: optionalString,
  version: epochMs,
});

export function decodeDelivery(hash: Record<string, string>): DeliveryRecord {
  return DeliveryRecordSchema.parse(DeliveryHashSchema.parse(hash));
}

/** What the event log keeps about an ingested event, whether or not anyone subscribed to it. */
export const EVENT_ROUTINGS = [
  "routed",
  "no-subscribers",
  "integration-disabled",
  "integration-missing",
] as const;
export const EventRoutingSchema = z.enum(EVENT_ROUTINGS);
export type EventRouting = z.infer<typeof EventRoutingSchema>;

export const EventRecordSchema = z.object({
  id: z.string(),
  type: EventTypeSchema,
  namespace: z.string(),
  occurredAt: z.string(),
  ingestedAt: z.iso.datetime(),
  data: z.string(),
  routing: EventRoutingSchema,
  deliveryIds: z.array(z.string()),
});
export type EventRecord = z.infer<typeof EventRecordSchema>;

/** The stored form of an event (string `event:<namespace>:<id>`) is EventRecord as JSON. */
export function decodeEvent(json: string): EventRecord {
  return EventRecordSchema.parse(JSON.parse(json));
}

/** One entry of the status stream (see Keyspace.status). */
export const StatusEntrySchema = z.object({
  deliveryId: z.string(),
  phase: DeliveryPhaseSchema,
  namespace: z.string(),
  webhook: z.string(),
  eventType: EventTypeSchema,
  eventId: z.string(),
  attempts: z.coerce.number().int().nonnegative(),
  at: z.iso.datetime(),
  failureReason: FailureReasonSchema.optional(),
});
export type StatusEntry = z.infer<typeof StatusEntrySchema>;

/** Turns the flat `[field, value, field, value…]` of a stream entry into an object. */
export function fieldsToObject(fields: readonly string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) result[fields[i]!] = fields[i + 1]!;
  return result;
}
