import { z } from "zod";
import { EventTypeSchema } from "../../contract/event-types.ts";

// What producers send. The API body and the ingest stream's fields are validated by the same
// rules, so an event is either delivered as documented or rejected with a reason.

export const EventIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "1-128 characters of [A-Za-z0-9._:-], starting alphanumeric");

export const NamespaceSchema = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "a Kubernetes namespace name");

export const OccurredAtSchema = z.iso.datetime({ offset: true, error: "an ISO-8601 date-time" });

const DataSchema = z.record(z.string(), z.unknown(), { error: "a JSON object" });

/** `POST /v1/events` body (one element of the batch form). */
export const IngestEventSchema = z.strictObject({
  type: EventTypeSchema,
  namespace: NamespaceSchema,
  id: EventIdSchema.optional(),
  occurredAt: OccurredAtSchema.optional(),
  data: DataSchema,
});
export type IngestEvent = z.infer<typeof IngestEventSchema>;

/** One entry of the ingest stream as producers write it (see Keyspace.events). */
export const StreamEventSchema = z.object({
  type: EventTypeSchema,
  namespace: NamespaceSchema,
  id: EventIdSchema.optional(),
  occurredAt: OccurredAtSchema.optional(),
  data: z.string().transform((json, ctx) => {
    try {
      const value: unknown = JSON.parse(json);
      if (typeof value === "object" && value !== null && !Array.isArray(value)) return json;
    } catch {
      // reported below
    }
    ctx.addIssue({ code: "custom", message: "a JSON object" });
    return z.NEVER;
  }),
});
