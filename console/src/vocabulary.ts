import type { EventType } from "../../contract/event-types.ts";
import type { DeliveryPhase, FailureReason } from "../../contract/records.ts";

// The event log's words, as the browser needs them. The contract's lists come with its zod
// schemas (zod's full build, ~100 KB gzipped: over the page's whole budget), so the console keeps
// its own copies: the types refuse a word the contract does not have, and vocabulary.test.ts
// fails when the contract has one the console lacks.

export const PHASES = ["QUEUED", "SENT", "FAILED"] as const satisfies readonly DeliveryPhase[];

export const EVENT_TYPES = [
  "appointment.completed",
  "appointment.status_changed",
  "job.created",
  "job.updated",
  "payment.received",
  "payment.refunded",
  "submission_batch.created",
  "submission_batch.deleted",
] as const satisfies readonly EventType[];

export const FAILURE_REASONS = [
  "attempts-exhausted",
  "endpoint-gone",
  "aborted-by-receiver",
  "destination-refused",
  "integration-disabled",
  "webhook-removed",
  "webhook-paused",
] as const satisfies readonly FailureReason[];

export type Phase = (typeof PHASES)[number];
