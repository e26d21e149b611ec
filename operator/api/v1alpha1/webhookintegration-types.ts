import { z } from "zod";
import { ageColumn, type CrdDefinition, readyColumns } from "./crd-definition.ts";
import { INTEGRATION_NAME } from "./group-version.ts";
import {
  type CustomObject,
  conditions,
  duration,
  durationToMs,
  objectName,
  observedGeneration,
  SecretKeySelectorSchema,
  UNOBSERVED_STATUS,
} from "./shared-types.ts";

export const BackoffSchema = z
  .object({
    initialDelay: duration("Delay before the second attempt.", { min: "1ms", max: "1h" }).default("5s"),
    maxDelay: duration("Upper bound of any delay between attempts.", { min: "1ms", max: "24h" }).default(
      "1h",
    ),
    multiplier: z
      .int()
      .min(1)
      .max(10)
      .default(6)
      .meta({ description: "Factor applied to the delay after each failed attempt. Jitter is added." }),
  })
  .refine(
    (backoff) => durationToMs(backoff.maxDelay) >= durationToMs(backoff.initialDelay),
    "maxDelay must not be shorter than initialDelay",
  )
  .meta({
    description: "Exponential backoff between attempts of one delivery.",
    "x-kubernetes-validations": [
      {
        rule: "duration(self.maxDelay) >= duration(self.initialDelay)",
        message: "maxDelay must not be shorter than initialDelay",
      },
    ],
  });

export const CircuitBreakerSchema = z
  .object({
    consecutiveFailures: z.int().min(0).max(1000).default(5).meta({
      description:
        "Failed attempts in a row to one webhook that open its circuit: its deliveries then wait, QUEUED, without spending attempts, until a probe attempt succeeds. 0 turns the breaker off.",
    }),
    cooldown: duration("How long an open circuit holds deliveries back before one probe attempt.", {
      min: "1ms",
      max: "24h",
    }).default("30s"),
    maxCooldown: duration("Upper bound of the cooldown, which doubles after each failed probe.", {
      min: "1ms",
      max: "24h",
    }).default("10m"),
  })
  .refine(
    (breaker) => durationToMs(breaker.maxCooldown) >= durationToMs(breaker.cooldown),
    "maxCooldown must not be shorter than cooldown",
  )
  .meta({
    description:
      "Endpoint health: a webhook whose endpoint keeps failing is paused by the dispatcher between probes, so its deliveries wait instead of burning their attempts.",
    "x-kubernetes-validations": [
      {
        rule: "duration(self.maxCooldown) >= duration(self.cooldown)",
        message: "maxCooldown must not be shorter than cooldown",
      },
    ],
  });

export const AutoPauseSchema = z
  .object({
    after: duration(
      "How long a webhook's endpoint may fail without a success in between (the dispatchers' attempts and probes) before the operator auto-pauses the webhook: Ready=False/EndpointUnhealthy, its deliveries wait QUEUED until it is resumed (a spec change, or the annotation webhooks.dataforce.io/resume=<token>). 0s turns auto-pause off.",
      { min: "0s", max: "8760h" },
    ).default("120h"),
  })
  .meta({
    description: "Auto-pause of a webhook whose endpoint keeps failing (5 days by default, like Svix).",
  });

export const DeliverySettingsSchema = z
  .object({
    maxAttempts: z
      .int()
      .min(1)
      .max(10)
      .default(3)
      .meta({ description: "Attempts per delivery (and per manual retry) before it is FAILED." }),
    timeout: duration("Per-attempt timeout; an attempt without a 2xx answer by then fails.", {
      min: "1ms",
      max: "60s",
    }).default("15s"),
    backoff: BackoffSchema.default({ initialDelay: "5s", maxDelay: "1h", multiplier: 6 }),
    circuitBreaker: CircuitBreakerSchema.default({
      consecutiveFailures: 5,
      cooldown: "30s",
      maxCooldown: "10m",
    }),
    autoPause: AutoPauseSchema.default({ after: "120h" }),
  })
  .meta({ description: "How deliveries of this account are attempted." });

export const MIRROR_MODES = ["All", "FailedOnly", "None"] as const;

export const EventLogSettingsSchema = z
  .object({
    mirror: z.enum(MIRROR_MODES).default("All").meta({
      description:
        "Which deliveries appear as WebhookEvent objects: All, FailedOnly (only those that reach FAILED) or None. The full log stays in the dispatcher either way.",
    }),
    retention: duration("How long WebhookEvent objects are kept after creation.", {
      min: "1m",
      max: "8760h",
    }).default("168h"),
    maxEvents: z.int().min(1).max(100_000).default(1000).meta({
      description: "Most WebhookEvent objects kept in the namespace; the oldest are deleted first.",
    }),
  })
  .meta({ description: "How the delivery log is mirrored into WebhookEvent objects." });

export const DestinationPolicySchema = z
  .object({
    allowPlainHTTP: z.boolean().default(false).meta({
      description: "Allow webhook URLs with plain http://. By default only https:// is accepted.",
    }),
  })
  .meta({ description: "Which destinations webhooks of this account may use." });

export const WebhookIntegrationSpecSchema = z
  .object({
    enabled: z.boolean().default(false).meta({
      description: "The account's toggle: no webhook in this namespace delivers until it is true.",
    }),
    delivery: DeliverySettingsSchema.default({
      maxAttempts: 3,
      timeout: "15s",
      backoff: { initialDelay: "5s", maxDelay: "1h", multiplier: 6 },
      circuitBreaker: { consecutiveFailures: 5, cooldown: "30s", maxCooldown: "10m" },
      autoPause: { after: "120h" },
    }),
    signingSecretRef: SecretKeySelectorSchema.optional().meta({
      description:
        "Secret key holding the signing keys: whsec_… (Standard Webhooks v1, HMAC) or whsk_… (v1a, ed25519). Several keys separated by spaces all sign while keys rotate. When absent the operator generates one into an owned Secret.",
    }),
    signatureScheme: z.enum(["v1", "v1a"]).default("v1").meta({
      description:
        "The key the operator generates when signingSecretRef is absent: v1, a shared whsec_ secret (HMAC-SHA256), or v1a, an ed25519 key pair whose public key (whpk_…) is in status.signingPublicKeys, so receivers hold nothing that can sign. Switching adds a key of the new scheme beside the old one; both sign until the old one is removed from the Secret. With signingSecretRef the keys' own prefixes decide.",
    }),
    eventLog: EventLogSettingsSchema.default({ mirror: "All", retention: "168h", maxEvents: 1000 }),
    destinationPolicy: DestinationPolicySchema.default({ allowPlainHTTP: false }),
  })
  .meta({ description: "Desired state of the account's webhook integration." });

export const WebhookIntegrationStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    conditions: conditions(
      "Ready is True when the integration is as its spec wants it: enabled and delivering (reason Active) or switched off (IntegrationDisabled); otherwise False with the reason (Unknown while the signing secret is generated). Reconciling is True while the operator converges or waits for the signing Secret or its label; Stalled is True (GitOps tools: failed) for what only a change fixes: InvalidSpec, InvalidSigningSecret, or a Secret or label still missing after the operator's grace period (2 minutes by default).",
    ),
    activeWebhooks: z
      .int()
      .min(0)
      .max(100_000)
      .optional()
      .meta({ description: "Webhooks of the namespace that currently deliver." }),
    signingSecretName: objectName("Secret that holds the signing secret in use.").optional(),
    signingPublicKeys: z
      .array(z.string().regex(/^whpk_[A-Za-z0-9+/]{43}=$/))
      .max(10)
      .optional()
      .meta({
        description:
          "Public keys (whpk_…) of the v1a (ed25519) signing keys in use: receivers verify webhook-signature's v1a entries with them.",
      }),
    ingestTokenSecretName: objectName(
      "Secret (key `token`) holding this namespace's own ingest token: it publishes events into this namespace only.",
    ).optional(),
    eventLogTokenSecretName: objectName(
      "Secret (key `token`) holding this namespace's own event log token: it lists, shows and retries this namespace's deliveries only.",
    ).optional(),
  })
  .default(UNOBSERVED_STATUS)
  .meta({ description: "Observed state of the integration." });

export type WebhookIntegrationSpec = z.infer<typeof WebhookIntegrationSpecSchema>;
export type WebhookIntegrationStatus = z.infer<typeof WebhookIntegrationStatusSchema>;
export type WebhookIntegration = CustomObject<WebhookIntegrationSpec, WebhookIntegrationStatus>;

export const webhookIntegrationCrd: CrdDefinition = {
  kind: "WebhookIntegration",
  plural: "webhookintegrations",
  singular: "webhookintegration",
  shortNames: ["whi"],
  description:
    "WebhookIntegration is an account's webhook toggle and delivery settings. One per namespace, named default.",
  spec: WebhookIntegrationSpecSchema,
  status: WebhookIntegrationStatusSchema,
  rootValidations: [
    {
      rule: `self.metadata.name == '${INTEGRATION_NAME}'`,
      message: `a namespace has one WebhookIntegration and it must be named '${INTEGRATION_NAME}'`,
    },
  ],
  printerColumns: [
    { name: "Enabled", type: "boolean", jsonPath: ".spec.enabled", description: "The account's toggle." },
    {
      name: "Webhooks",
      type: "integer",
      jsonPath: ".status.activeWebhooks",
      description: "Webhooks that currently deliver.",
    },
    ...readyColumns,
    ageColumn,
  ],
};
