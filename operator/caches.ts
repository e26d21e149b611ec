import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { ZodType } from "zod";
import {
  type CachedWebhookEvent,
  type Webhook,
  WebhookEventSpecSchema,
  type WebhookIntegration,
  WebhookIntegrationSpecSchema,
  WebhookSpecSchema,
} from "./api/v1alpha1/index.ts";
import type { Informer } from "./controller/informer.ts";

// Typed, read-only views of the informer caches the reconcilers, the mirror and the
// retry handler share. Objects come from JSON (timestamps are strings), so the API
// types of operator/api describe them better than client-node's; the cast is here, once.

export interface Cache<T> {
  get(namespace: string, name: string): T | undefined;
  /** Objects of one namespace, or of all. */
  list(namespace?: string): T[];
}

export function cacheOf<T>(informer: Pick<Informer<KubernetesObject>, "get" | "list">): Cache<T> {
  return {
    get: (namespace, name) => informer.get(name, namespace) as T | undefined,
    list: (namespace) => informer.list(namespace) as T[],
  };
}

export interface OperatorCaches {
  integrations: Cache<WebhookIntegration>;
  webhooks: Cache<Webhook>;
  events: Cache<CachedWebhookEvent>;
  secrets: Cache<V1Secret>;
}

/** A KubernetesObject view of an API object, for helpers typed with client-node's types (events, keys). */
export function asKubernetesObject(object: {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid?: string };
}): KubernetesObject {
  const { name, namespace, uid } = object.metadata;
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: { name, namespace, ...(uid ? { uid } : {}) },
  };
}

/**
 * The informers' `parse` hook for a custom resource: the cast of `cacheOf` is only as good
 * as this. An object without a name and namespace is refused (the informer logs it and
 * leaves it out). A missing or non-object `spec` becomes `{}`, so code reading a field of
 * the spec never throws. With `strict` (WebhookEvents, which only the operator writes)
 * an object whose spec fails its zod schema is refused; otherwise (WebhookIntegration,
 * Webhook) it is kept as it is, logged, and its reconciler reports Ready=False/InvalidSpec.
 */
export function specParser(
  kind: string,
  schema: ZodType,
  options: { strict?: boolean; logger?: Logger } = {},
): (raw: KubernetesObject) => KubernetesObject {
  return (raw) => {
    const { name, namespace } = raw.metadata ?? {};
    if (typeof name !== "string" || name === "" || typeof namespace !== "string" || namespace === "") {
      throw new Error(`${kind} without metadata.name or metadata.namespace`);
    }
    const spec = (raw as { spec?: unknown }).spec;
    const object = isRecord(spec) ? raw : { ...raw, spec: {} };
    const result = schema.safeParse((object as { spec: unknown }).spec);
    if (!result.success) {
      const issues = result.error.issues.map((i) => `${i.path.join(".") || "spec"}: ${i.message}`).join("; ");
      if (options.strict) throw new Error(`${kind} ${namespace}/${name}: invalid spec: ${issues}`);
      options.logger?.warn({ kind, namespace, name, issues }, "object with an invalid spec");
    }
    return object;
  };
}

/** Drops `spec.payload` from what a parse hook returns (see CachedWebhookEvent). */
function withoutPayload(
  parse: (raw: KubernetesObject) => KubernetesObject,
): (raw: KubernetesObject) => KubernetesObject {
  return (raw) => {
    const object = parse(raw) as KubernetesObject & { spec: Record<string, unknown> };
    const { payload: _payload, ...spec } = object.spec;
    return { ...object, spec } as KubernetesObject;
  };
}

type Parse = (raw: KubernetesObject) => KubernetesObject;

export interface CustomResourceParsers {
  integrations: Parse;
  webhooks: Parse;
  events: Parse;
}

/** The parse hooks of the operator's custom resources. */
export function customResourceParsers(logger?: Logger): CustomResourceParsers {
  const options = logger ? { logger } : {};
  return {
    integrations: specParser("WebhookIntegration", WebhookIntegrationSpecSchema, options),
    webhooks: specParser("Webhook", WebhookSpecSchema, options),
    events: withoutPayload(specParser("WebhookEvent", WebhookEventSpecSchema, { ...options, strict: true })),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
