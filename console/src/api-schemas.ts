import * as z from "zod/mini";
import { PHASES } from "./vocabulary.ts";

// The event log API's answers as the console reads them (dispatcher/api/deliveries-routes.ts).
// zod's tree-shakable build: the page carries only the checks used here. Objects are not
// strict: a field the dispatcher adds later does not break an older page; words it adds later
// (an event type, a failure reason) are shown as they are.

const PhaseSchema = z.enum(PHASES);

/** One row of `GET /v1/deliveries` (contract/delivery-log.ts `DeliverySummary`). */
export const DeliverySummarySchema = z.object({
  id: z.string(),
  eventId: z.string(),
  eventType: z.string(),
  namespace: z.string(),
  webhook: z.string(),
  url: z.string(),
  phase: PhaseSchema,
  attempts: z.int(),
  maxAttempts: z.int(),
  cycle: z.int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  nextAttemptAt: z.optional(z.string()),
  failureReason: z.optional(z.string()),
});
export type DeliverySummary = z.infer<typeof DeliverySummarySchema>;

export const DeliveryPageSchema = z.object({
  items: z.array(DeliverySummarySchema),
  nextCursor: z.optional(z.string()),
});
export type DeliveryPage = z.infer<typeof DeliveryPageSchema>;

/** One attempt (contract/records.ts `AttemptSchema`). */
export const AttemptSchema = z.object({
  number: z.int(),
  startedAt: z.string(),
  durationMs: z.number(),
  statusCode: z.optional(z.int()),
  errorCode: z.optional(z.string()),
  error: z.optional(z.string()),
  responseBodyPrefix: z.optional(z.string()),
});
export type Attempt = z.infer<typeof AttemptSchema>;

/** A request header as the API shows it (dispatcher/api/sent-headers.ts): never a secret's value. */
export const ShownHeaderSchema = z.object({
  name: z.string(),
  value: z.optional(z.string()),
  note: z.optional(z.string()),
});
export type ShownHeader = z.infer<typeof ShownHeaderSchema>;

/** `GET /v1/deliveries/:id` (contract/records.ts `DeliveryRecordSchema`, with the headers sent). */
export const DeliveryDetailSchema = z.object({
  ...DeliverySummarySchema.shape,
  attempts: z.array(AttemptSchema),
  payload: z.string(),
  cycleAttempts: z.int(),
  requestHeaders: z._default(z.array(ShownHeaderSchema), []),
});
export type DeliveryDetail = z.infer<typeof DeliveryDetailSchema>;

export const RetryResultSchema = z.object({
  id: z.string(),
  outcome: z.enum(["requeued", "already-honoured"]),
  token: z.string(),
});
export type RetryResult = z.infer<typeof RetryResultSchema>;

export const BulkRetryResultSchema = z.object({
  token: z.string(),
  requeued: z.int(),
  alreadyHonoured: z.int(),
  notFailed: z.int(),
  notFound: z.int(),
});
export type BulkRetryResult = z.infer<typeof BulkRetryResultSchema>;

export const ApiErrorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
