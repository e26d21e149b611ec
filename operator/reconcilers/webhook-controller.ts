import type { KubernetesObject } from "@kubernetes/client-node";
import type { OperatorCaches } from "../caches.ts";
import type { Controller } from "../controller/controller.ts";
import type { Manager } from "../controller/manager.ts";
import {
  annotationsChanged,
  anyOf,
  dataChanged,
  generationChanged,
  statusChanged,
} from "../controller/predicates.ts";
import type { OperatorInformers } from "../watch-scope.ts";
import { secretIsRead } from "./namespace-inputs.ts";
import { type WebhookReconcilerDeps, webhookReconciler } from "./webhook.ts";

// The Webhook controller's wiring: a webhook's Ready verdict depends on its namespace's
// integration and on the Secrets it reads, so changes there reconcile every webhook of the
// namespace. The mirror also enqueues a webhook when it sees one of its deliveries.
//   for:     Webhook spec changes, annotations (the resume annotation), and changes of its
//            conditions: the reconciler writes only what
//            differs from the cached status, which may not hold its last write yet (a verdict
//            that flips and flips back within that lag would leave the middle one written)
//   watches: WebhookIntegration spec changes; Secret data the namespace reads

export function addWebhookController(
  manager: Pick<Manager, "controller">,
  informers: OperatorInformers,
  deps: WebhookReconcilerDeps,
  workers: number,
): Controller {
  return manager.controller({
    name: "webhook",
    for: informers.webhooks,
    // not lastDelivery: what is written there is the newest the mirror saw, whatever the cache holds
    forPredicate: anyOf(generationChanged, annotationsChanged, statusChanged("conditions")),
    watches: [
      {
        informer: informers.integrations,
        predicate: generationChanged,
        map: (integration) => webhookKeys(deps.caches, integration),
      },
      {
        informer: informers.secrets,
        predicate: dataChanged,
        map: (secret) =>
          secretIsRead(deps.caches, secret, deps.generatedSecret)
            ? webhookKeys(deps.caches, secret)
            : undefined,
      },
    ],
    reconcile: webhookReconciler(deps),
    workers,
  });
}

/** The keys of every webhook in the object's namespace. */
function webhookKeys(caches: OperatorCaches, object: KubernetesObject): string[] {
  const namespace = object.metadata?.namespace ?? "";
  return caches.webhooks.list(namespace).map((webhook) => `${namespace}/${webhook.metadata.name}`);
}
