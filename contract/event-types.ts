import { z } from "zod";

/** The product's business events: the only values a Webhook may subscribe to or a producer may publish. */
export const EVENT_TYPES = [
  "appointment.completed",
  "appointment.status_changed",
  "job.created",
  "job.updated",
  "payment.received",
  "payment.refunded",
  "submission_batch.created",
  "submission_batch.deleted",
] as const;

export const EventTypeSchema = z.enum(EVENT_TYPES);
export type EventType = z.infer<typeof EventTypeSchema>;
