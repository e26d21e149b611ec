import { GROUP, VERSION } from "./api/v1alpha1/index.ts";
import type { ResourceType } from "./controller/kube.ts";

// The resources the operator reads and writes; RBAC in
// charts/dataforce-webhooks/files/operator-rbac-rules.yaml grants exactly these.

export const INTEGRATIONS: ResourceType = { group: GROUP, version: VERSION, plural: "webhookintegrations" };
export const WEBHOOKS: ResourceType = { group: GROUP, version: VERSION, plural: "webhooks" };
export const WEBHOOK_EVENTS: ResourceType = { group: GROUP, version: VERSION, plural: "webhookevents" };
export const SECRETS: ResourceType = { group: "", version: "v1", plural: "secrets" };
export const WEBHOOK_REPLAYS: ResourceType = { group: GROUP, version: VERSION, plural: "webhookreplays" };
