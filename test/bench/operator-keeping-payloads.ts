import { WebhookEventSpecSchema } from "../../operator/api/v1alpha1/index.ts";
import { customResourceParsers, specParser } from "../../operator/caches.ts";
import { runOperator } from "../../operator/run.ts";

// The operator with one difference: the WebhookEvent cache keeps `spec.payload`, as it did
// before CachedWebhookEvent. Only operator-memory.ts runs it, to show what dropping it saves.

await runOperator({
  parsers: (logger) => ({
    ...customResourceParsers(logger),
    events: specParser("WebhookEvent", WebhookEventSpecSchema, { logger, strict: true }),
  }),
  variant: "keeping WebhookEvent payloads",
});
