import { z } from "zod";
import { EventTypeSchema } from "../../../contract/event-types.ts";
import { ageColumn, type CrdDefinition } from "./crd-definition.ts";
import {
  type CustomObject,
  conditions,
  observedGeneration,
  timestamp,
  UNOBSERVED_STATUS,
} from "./shared-types.ts";
import { DeliveryPhaseSchema } from "./webhook-types.ts";

/** The longest payload a WebhookEvent holds (etcd objects stay small); longer ones are cut. */
export const MAX_MIRRORED_PAYLOAD = 65_536;
/** The most attempts a WebhookEvent counts. */
export const MAX_MIRRORED_ATTEMPTS = 1000;

export const WebhookEventSpecSchema = z
  .object({
    deliveryId: z.string().min(1).max(63).meta({
      description: "Delivery id in the dispatcher's log; also the webhook-id header the receiver saw.",
    }),
    eventId: z.string().min(1).max(256).meta({ description: "Id of the business event." }),
    eventType: EventTypeSchema.meta({ description: "Type of the business event." }),
    webhook: z.string().min(1).max(253).meta({ description: "Name of the Webhook this delivery is for." }),
    url: z.string().min(1).max(2048).meta({ description: "URL the notification is POSTed to." }),
    occurredAt: timestamp("When the business event happened.").optional(),
    payload: z.string().max(MAX_MIRRORED_PAYLOAD).meta({
      description:
        "The exact JSON body POSTed (the signed bytes), as a string; only its first 65,536 characters when payloadTruncated is true.",
    }),
    payloadTruncated: z.boolean().optional().meta({
      description:
        "True when the body was longer than a WebhookEvent holds: payload is its beginning, and the whole body is in the dispatcher's log (GET /v1/deliveries/<deliveryId>).",
    }),
  })
  .meta({
    description: "What was delivered. Immutable: it records what was sent.",
    "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "spec is immutable" }],
  });

export const AttemptRecordSchema = z
  .object({
    number: z
      .int()
      .min(1)
      .max(1000)
      .meta({ description: "1 for the first attempt, counting across retries." }),
    time: timestamp("When the attempt started."),
    durationMs: z
      .int()
      .min(0)
      .max(3_600_000)
      .meta({ description: "How long the attempt took, in milliseconds." }),
    statusCode: z.int().min(0).max(999).optional().meta({ description: "HTTP status answered, if any." }),
    error: z.string().max(1024).optional().meta({ description: "Why the attempt failed, if it did." }),
  })
  .meta({ description: "One HTTP attempt of the delivery." });

export const WebhookEventStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    phase: DeliveryPhaseSchema.optional().meta({
      description: "QUEUED (pending, attempts left), SENT (delivered) or FAILED (all attempts failed).",
    }),
    attempts: z
      .int()
      .min(0)
      .max(MAX_MIRRORED_ATTEMPTS)
      .optional()
      .meta({ description: "Attempts made so far, across retries." }),
    maxAttempts: z
      .int()
      .min(1)
      .max(10)
      .optional()
      .meta({ description: "Attempt budget of the current round." }),
    attemptHistory: z
      .array(AttemptRecordSchema)
      .max(50)
      .optional()
      .meta({ description: "The most recent attempts, oldest first.", "x-kubernetes-list-type": "atomic" }),
    nextAttemptAt: timestamp("When the next attempt is due, while QUEUED.").optional(),
    lastRetryToken: z.string().max(253).optional().meta({
      description:
        "Value of the retry annotation last handled: honoured (the delivery was FAILED and went back to QUEUED) or ignored with a RetryIgnored Event. The same token never retries twice.",
    }),
    conditions: conditions(
      "Ready is True once SENT; False with reason Queued (Reconciling True: attempts under way), Failed or Lost (Stalled True: only a retry annotation sends it again).",
    ),
  })
  .default(UNOBSERVED_STATUS)
  .meta({ description: "Delivery state, mirrored from the dispatcher's log." });

export type WebhookEventSpec = z.infer<typeof WebhookEventSpecSchema>;
export type WebhookEventStatus = z.infer<typeof WebhookEventStatusSchema>;
export type AttemptRecord = z.infer<typeof AttemptRecordSchema>;
export type WebhookEvent = CustomObject<WebhookEventSpec, WebhookEventStatus>;
/**
 * A WebhookEvent as the operator's informer cache holds it: without `spec.payload` (up to 64 KiB
 * each, and nothing the operator reads back), so memory grows with the number of objects only.
 */
export type CachedWebhookEvent = CustomObject<Omit<WebhookEventSpec, "payload">, WebhookEventStatus>;

export const webhookEventCrd: CrdDefinition = {
  kind: "WebhookEvent",
  plural: "webhookevents",
  singular: "webhookevent",
  shortNames: ["whe", "whevent"],
  description:
    "WebhookEvent is one delivery of a business event to a Webhook, mirrored from the dispatcher's log. Annotate a FAILED one with webhooks.dataforce.io/retry=<token> to retry it.",
  spec: WebhookEventSpecSchema,
  status: WebhookEventStatusSchema,
  rootValidations: [
    {
      // A WebhookEvent can only name its own delivery: one namespace cannot point a retry (or
      // anything else) at another namespace's delivery id.
      rule: "self.metadata.name == self.spec.deliveryId",
      message: "spec.deliveryId must equal metadata.name (the delivery this object mirrors)",
    },
  ],
  printerColumns: [
    { name: "Webhook", type: "string", jsonPath: ".spec.webhook", description: "Webhook delivered to." },
    { name: "Event", type: "string", jsonPath: ".spec.eventType", description: "Business event type." },
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "QUEUED, SENT or FAILED." },
    { name: "Attempts", type: "integer", jsonPath: ".status.attempts", description: "Attempts made." },
    {
      name: "Event ID",
      type: "string",
      jsonPath: ".spec.eventId",
      description: "Business event id.",
      priority: 1,
    },
    ageColumn,
  ],
};
