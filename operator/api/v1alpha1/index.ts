import type { CrdDefinition } from "./crd-definition.ts";
import { webhookCrd } from "./webhook-types.ts";
import { webhookEventCrd } from "./webhookevent-types.ts";
import { webhookIntegrationCrd } from "./webhookintegration-types.ts";
import { webhookReplayCrd } from "./webhookreplay-types.ts";

export * from "./group-version.ts";
export * from "./shared-types.ts";
export * from "./webhook-types.ts";
export * from "./webhookevent-types.ts";
export * from "./webhookintegration-types.ts";
export * from "./webhookreplay-types.ts";

/** Every kind of the API, in the order their CRDs are written. */
export const CRDS: readonly CrdDefinition[] = [
  webhookIntegrationCrd,
  webhookCrd,
  webhookEventCrd,
  webhookReplayCrd,
];
