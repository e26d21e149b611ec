/** The API group and version every Dataforce Webhooks kind is served under. */
export const GROUP = "webhooks.dataforce.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Labels the operator puts on every WebhookEvent; part of the contract (`kubectl get -l`). */
export const LABEL_WEBHOOK = `${GROUP}/webhook`;
export const LABEL_EVENT_TYPE = `${GROUP}/event-type`;
export const LABEL_PHASE = `${GROUP}/phase`;

/** Annotation that requests a retry of a FAILED WebhookEvent; its value is a token honoured once. */
export const ANNOTATION_RETRY = `${GROUP}/retry`;

/**
 * Annotation that resumes an auto-paused Webhook (Ready=False/EndpointUnhealthy); its value is a
 * token handled once (recorded in status.lastResumeToken), so the annotation may stay in Git.
 */
export const ANNOTATION_RESUME = `${GROUP}/resume`;

/** The only name a WebhookIntegration may have: one integration (account toggle) per namespace. */
export const INTEGRATION_NAME = "default";

/**
 * The consent label a Secret must carry before webhooks may read it (`signingSecretRef`,
 * `headers[].valueFrom.secretKeyRef`): whoever may edit Webhooks in a namespace must not be able
 * to send any of its Secrets (a database password, say) to a URL of their choosing. The operator
 * watches only Secrets labelled so (and the ones it generates, which it labels itself).
 */
export const SECRET_USAGE_LABEL = `${GROUP}/usage`;
export const SECRET_USAGE_VALUE = "webhook";
