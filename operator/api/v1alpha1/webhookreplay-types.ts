import { z } from "zod";
import { EventTypeSchema } from "../../../contract/event-types.ts";
import { ageColumn, type CrdDefinition, readyColumns } from "./crd-definition.ts";
import {
  type CustomObject,
  conditions,
  objectName,
  observedGeneration,
  timestamp,
  UNOBSERVED_STATUS,
} from "./shared-types.ts";

/** Phases a replay may select: what is settled. A QUEUED delivery is still being tried. */
export const REPLAY_PHASES = ["FAILED", "SENT"] as const;
export const ReplayPhaseSchema = z.enum(REPLAY_PHASES);
export type ReplayPhase = z.infer<typeof ReplayPhaseSchema>;

export const WebhookReplaySpecSchema = z
  .object({
    from: timestamp("Replay deliveries created at or after this time."),
    to: timestamp(
      "Replay deliveries created at or before this time. Default: when this WebhookReplay was created, so applying it again later selects the same deliveries.",
    ).optional(),
    phases: z.array(ReplayPhaseSchema).min(1).max(2).default(["FAILED"]).meta({
      description:
        "Phases of the deliveries to replay: FAILED (all attempts failed), SENT (delivered; sent again, e.g. to a receiver that lost data). Default: FAILED.",
      "x-kubernetes-list-type": "set",
    }),
    webhook: objectName("Only deliveries to this Webhook of the namespace.").optional(),
    eventType: EventTypeSchema.optional().meta({ description: "Only deliveries of this business event." }),
    targetWebhook: objectName(
      "Send the selected deliveries to this other Webhook of the namespace instead (a replacement endpoint): each becomes a new delivery of the same event to that webhook's URL, with a fresh budget of attempts, made once per WebhookReplay (and spec generation); the originals are left as they are. Only deliveries of the event the target subscribes to are sent; the target's filter is not applied. The target must be delivering (Ready, not paused, its integration enabled): until it is, the replay waits (Ready=False, reason TargetNotReady).",
    ).optional(),
    maxPerSecond: z
      .int()
      .min(1)
      .max(100)
      .default(10)
      .meta({ description: "Rate limit: deliveries requeued per second at most (1 to 100)." }),
  })
  .refine((spec) => spec.to === undefined || Date.parse(spec.from) <= Date.parse(spec.to), {
    message: "from must not be after to",
    path: ["to"],
  })
  .refine((spec) => spec.targetWebhook === undefined || spec.targetWebhook !== spec.webhook, {
    message: "targetWebhook must differ from webhook",
    path: ["targetWebhook"],
  })
  .meta({
    description:
      "Which deliveries of the namespace's event log to replay: each selected delivery goes back to QUEUED with a fresh budget of attempts (or, with targetWebhook, is sent to that webhook as a new delivery), once per WebhookReplay (and spec generation).",
    "x-kubernetes-validations": [
      {
        rule: "!has(self.to) || timestamp(self.from) <= timestamp(self.to)",
        message: "from must not be after to",
      },
      {
        rule: "!has(self.targetWebhook) || !has(self.webhook) || self.targetWebhook != self.webhook",
        message: "targetWebhook must differ from webhook",
      },
    ],
  });

export const WebhookReplayStatusSchema = z
  .object({
    observedGeneration: observedGeneration(),
    conditions: conditions(
      "Ready is True (reason Complete) once every selected delivery is requeued; False with reason Replaying (and Reconciling True) while the replay goes on, or TargetNotReady (Reconciling True) while its targetWebhook is not delivering; False with InvalidSpec (and Stalled True) when only a change helps.",
    ),
    matched: z
      .int()
      .min(0)
      .optional()
      .meta({ description: "Deliveries in the event log the selection matched so far." }),
    requeued: z.int().min(0).optional().meta({
      description:
        "Matched deliveries put back to QUEUED by this replay (with targetWebhook: sent to it as new deliveries).",
    }),
    skipped: z.int().min(0).optional().meta({
      description:
        "Matched deliveries not requeued: their phase changed before their turn, or they expired from the log.",
    }),
    startedAt: timestamp("When this generation of the replay started.").optional(),
    completedAt: timestamp("When this generation of the replay completed.").optional(),
    cursor: z
      .string()
      .max(4096)
      .optional()
      .meta({ description: "Where the replay goes on in the event log (opaque; the operator's own)." }),
    source: z.enum(["Redis", "DurableStore"]).optional().meta({
      description:
        "The part of the event log the replay walks: Redis, then (when the dispatchers archive to a durable log store) the deliveries only the store still has, walked by the dispatchers.",
    }),
  })
  .default(UNOBSERVED_STATUS)
  .meta({ description: "Progress of the replay." });

export type WebhookReplaySpec = z.infer<typeof WebhookReplaySpecSchema>;
export type WebhookReplayStatus = z.infer<typeof WebhookReplayStatusSchema>;
export type WebhookReplay = CustomObject<WebhookReplaySpec, WebhookReplayStatus>;

export const webhookReplayCrd: CrdDefinition = {
  kind: "WebhookReplay",
  plural: "webhookreplays",
  singular: "webhookreplay",
  shortNames: ["whr"],
  description:
    "WebhookReplay requeues the deliveries of its namespace's event log that a time range, phases, a webhook and an event type select, rate-limited, once.",
  spec: WebhookReplaySpecSchema,
  status: WebhookReplayStatusSchema,
  printerColumns: [
    { name: "From", type: "string", jsonPath: ".spec.from", description: "Start of the time range." },
    { name: "Matched", type: "integer", jsonPath: ".status.matched", description: "Deliveries selected." },
    { name: "Requeued", type: "integer", jsonPath: ".status.requeued", description: "Deliveries requeued." },
    { name: "Skipped", type: "integer", jsonPath: ".status.skipped", description: "Deliveries skipped." },
    ...readyColumns,
    ageColumn,
  ],
};
