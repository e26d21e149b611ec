import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import type { Webhook, WebhookEvent, WebhookIntegration } from "./api/v1alpha1/index.ts";
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
  events: Cache<WebhookEvent>;
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
