import { WebhookEventSpecSchema } from "../../operator/api/v1alpha1/index.ts";
import { customResourceParsers, specParser } from "../../operator/caches.ts";
import { loadSettings } from "../../operator/config.ts";
import { PooledKubeConfig } from "../../operator/controller/pooled-kube-config.ts";
import { createLogger } from "../../operator/logger.ts";
import { createOperator } from "../../operator/operator.ts";

// operator/run.ts with one difference: the WebhookEvent cache keeps `spec.payload`, as it did
// before CachedWebhookEvent. Only operator-memory.ts runs it, to show what dropping it saves.

const settings = loadSettings();
const logger = createLogger({
  name: "operator",
  level: settings.logLevel,
  base: { identity: settings.identity },
});
const kubeConfig = new PooledKubeConfig();
kubeConfig.loadFromDefault();

const parsers = {
  ...customResourceParsers(logger),
  events: specParser("WebhookEvent", WebhookEventSpecSchema, { logger, strict: true }),
};
const operator = createOperator(settings, kubeConfig, logger, { parsers });
operator.manager.handleSignals();
await operator.start();
logger.info({ port: operator.manager.address()?.port }, "operator started (keeping WebhookEvent payloads)");
