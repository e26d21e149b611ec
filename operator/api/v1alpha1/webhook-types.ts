import { z } from "zod";
import { MAX_FILTER_LENGTH } from "../../../contract/event-filter.ts";
import { EventTypeSchema } from "../../../contract/event-types.ts";
import {
  isReservedHeader,
  RESERVED_HEADER_PREFIXES,
  RESERVED_HEADERS,
} from "../../../contract/reserved-headers.ts";
import { WebhookOrderingSchema } from "../../../contract/routing-config.ts";
import { ageColumn, type CrdDefinition, readyColumns } from "./crd-definition.ts";
import {
  type CustomObject,
  conditions,
  observedGeneration,
  SecretKeySelectorSchema,
  timestamp,
  UNOBSERVED_STATUS,
} from "./shared-types.ts";

/** Headers the dispatcher owns, or that HTTP/1.1 connection handling forbids (one list, shared with the dispatcher). */
export { RESERVED_HEADERS };

const HEADER_NAME_PATTERN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

function isAbsoluteHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

export const WebhookUrlSchema = z
  .string()
  .min(1)
  .max(2048)
  .refine(isAbsoluteHttpUrl, "url must be an absolute http:// or https:// URL with a host")
  .refine(
    (value) => !/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*@/.test(value),
    "url must not embed credentials; send them as a header from a Secret",
  )
  .meta({
    description:
      "Endpoint that receives the POST. https:// unless the integration's destinationPolicy allows plain http.",
    "x-kubernetes-validations": [
      {
        rule: "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",
        message: "url must be an absolute http:// or https:// URL with a host",
      },
      {
        rule: "!self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*@')",
        message: "url must not embed credentials; send them as a header from a Secret",
      },
    ],
  });

export const HeaderSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(256)
      .regex(HEADER_NAME_PATTERN, "must be a valid HTTP header name")
      .refine((name) => !isReservedHeader(name), "header is set by the dispatcher and cannot be overridden")
      .meta({
        description:
          "HTTP header name. Headers the dispatcher sets (webhook-*, content-type, user-agent, …) are refused.",
        "x-kubernetes-validations": [
          {
            rule: `!(self.lowerAscii() in [${RESERVED_HEADERS.map((h) => `'${h}'`).join(", ")}]) && ${RESERVED_HEADER_PREFIXES.map((p) => `!self.lowerAscii().startsWith('${p}')`).join(" && ")}`,
            message: "header is set by the dispatcher and cannot be overridden",
          },
        ],
      }),
    value: z
      .string()
      .max(4096)
      .optional()
      .meta({ description: "Literal value. Use valueFrom for credentials." }),
    valueFrom: z
      .object({ secretKeyRef: SecretKeySelectorSchema })
      .optional()
      .meta({ description: "Takes the value from a Secret key in the same namespace." }),
  })
  .refine(
    (h) => (h.value === undefined) !== (h.valueFrom === undefined),
    "set exactly one of value or valueFrom",
  )
  .meta({
    description: "An extra HTTP header sent with every delivery of this webhook.",
    "x-kubernetes-validations": [
      { rule: "has(self.value) != has(self.valueFrom)", message: "set exactly one of value or valueFrom" },
    ],
  });

export const WebhookSpecSchema = z
  .object({
    event: EventTypeSchema.meta({ description: "The business event this webhook subscribes to." }),
    url: WebhookUrlSchema,
    displayName: z.string().max(253).optional().meta({ description: "Human-friendly name shown in tools." }),
    paused: z.boolean().default(false).meta({ description: "Stop delivering without deleting the webhook." }),
    ordering: WebhookOrderingSchema.default("Unordered").meta({
      description:
        "Unordered (default): deliveries go out concurrently, as they come. Ordered: one at a time, in the order the dispatcher accepted the events, each SENT or FAILED before the next is attempted; a failing delivery holds the ones behind it for up to its attempts' backoff, and pausing the webhook holds its queue. Throughput is then bounded by one round trip to the endpoint per delivery.",
    }),
    headers: z
      .array(HeaderSchema)
      .max(20)
      .optional()
      .meta({
        description: "Extra HTTP headers, for example an Authorization header from a Secret.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
      }),
    filter: z.string().min(1).max(MAX_FILTER_LENGTH).optional().meta({
      description:
        "A CEL expression over the notification: only events it evaluates to true for are delivered, e.g. `event.data.amount > 100.0 && event.data.currency == 'EUR'`. Variables: event.id, event.type, event.timestamp, event.namespace, event.data (the producer's JSON; numbers are doubles). An expression that does not compile makes the webhook Ready=False/InvalidFilter; one that fails on an event (a missing field, not a bool) or runs over its budget does not deliver that event.",
    }),
  })
  .meta({ description: "Desired state of the webhook: one event, one URL, optionally a filter." });

export const DELIVERY_PHASES = ["QUEUED", "SENT", "FAILED"] as const;
export const DeliveryPhaseSchema = z.enum(DELIVERY_PHASES);
export type DeliveryPhase = z.infer<typeof DeliveryPhaseSchema>;

export const WEBHOOK_HEALTH_STATES = ["Healthy", "Degraded", "CircuitOpen", "AutoPaused"] as const;

export const WebhookHealthSchema = z
  .object({
    state: z.enum(WEBHOOK_HEALTH_STATES).meta({
      description:
        "Healthy; Degraded (failures: the last attempt failed, or 20% or more of the last 20); CircuitOpen (the dispatchers hold its deliveries back between probes, attempts unspent); AutoPaused (failed for longer than the integration's delivery.autoPause.after: no attempts until resumed).",
    }),
    consecutiveFailures: z
      .int()
      .min(0)
      .max(1_000_000_000)
      .optional()
      .meta({ description: "Failed attempts in a row (as the dispatcher that reported last counted them)." }),
    failureRatio: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .meta({ description: "Failed share of the last 20 attempts (0 to 1)." }),
    failingSince: timestamp(
      "First failure of the current run of failures, absent after a success.",
    ).optional(),
    lastFailureTime: timestamp("The last failed attempt.").optional(),
    lastFailureReason: z.string().max(64).optional().meta({
      description: "Why it failed: HTTP <status> or an error code (timeout, connection_refused, …).",
    }),
    nextProbeTime: timestamp(
      "While the circuit is open: when the next probe attempt is let through.",
    ).optional(),
    resumedAt: timestamp(
      "When the webhook was last resumed; failures before it do not count toward auto-pause.",
    ).optional(),
  })
  .meta({ description: "Endpoint health as the dispatchers see it (updated every few seconds at most)." });
export type WebhookHealth = z.infer<typeof WebhookHealthSchema>;

export const WebhookStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    conditions: conditions(
      "Ready is True when the webhook is as its spec wants it: delivering (reason Active), paused (Paused) or idle while its integration is disabled (IntegrationDisabled); otherwise False with the reason (Unknown while the signing secret is generated). Reconciling is True while the operator converges or waits for a missing Secret, label or integration; Stalled is True (GitOps tools: failed) for what only a change fixes: InvalidSpec, InvalidFilter, InsecureURL, EndpointGone, EndpointUnhealthy (auto-paused: resume with a spec change or the webhooks.dataforce.io/resume annotation), or a Secret, label or integration still missing after the operator's grace period (2 minutes by default).",
    ),
    lastDelivery: z
      .object({
        deliveryId: z.string().max(253).meta({ description: "Name of the WebhookEvent of that delivery." }),
        eventId: z.string().max(256).meta({ description: "Id of the business event." }),
        phase: DeliveryPhaseSchema.meta({ description: "Phase of that delivery." }),
        time: timestamp("When that delivery last changed."),
        statusCode: z
          .int()
          .min(0)
          .max(999)
          .optional()
          .meta({ description: "HTTP status of its last attempt." }),
      })
      .optional()
      .meta({ description: "Summary of the most recent delivery." }),
    health: WebhookHealthSchema.optional(),
    lastResumeToken: z.string().max(256).optional().meta({
      description:
        "Value of the resume annotation (webhooks.dataforce.io/resume) last handled; the same token never resumes twice.",
    }),
  })
  .default(UNOBSERVED_STATUS)
  .meta({ description: "Observed state of the webhook." });

export type WebhookSpec = z.infer<typeof WebhookSpecSchema>;
export type WebhookStatus = z.infer<typeof WebhookStatusSchema>;
export type Webhook = CustomObject<WebhookSpec, WebhookStatus>;

export const webhookCrd: CrdDefinition = {
  kind: "Webhook",
  plural: "webhooks",
  singular: "webhook",
  shortNames: ["wh"],
  description: "Webhook subscribes one URL to one business event of its namespace's account.",
  spec: WebhookSpecSchema,
  status: WebhookStatusSchema,
  printerColumns: [
    { name: "Event", type: "string", jsonPath: ".spec.event", description: "Subscribed event." },
    { name: "URL", type: "string", jsonPath: ".spec.url", description: "Destination." },
    { name: "Paused", type: "boolean", jsonPath: ".spec.paused", description: "Paused flag.", priority: 1 },
    {
      name: "Ordering",
      type: "string",
      jsonPath: ".spec.ordering",
      description: "Unordered or Ordered delivery.",
      priority: 1,
    },
    {
      name: "Filter",
      type: "string",
      jsonPath: ".spec.filter",
      description: "Event filter (CEL).",
      priority: 1,
    },
    ...readyColumns,
    {
      name: "Health",
      type: "string",
      jsonPath: ".status.health.state",
      description: "Endpoint health: Healthy, Degraded, CircuitOpen or AutoPaused.",
    },
    {
      name: "Last Delivery",
      type: "string",
      jsonPath: ".status.lastDelivery.phase",
      description: "Phase of the most recent delivery.",
    },
    ageColumn,
  ],
};
