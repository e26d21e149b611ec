import type { KubernetesObject } from "@kubernetes/client-node";
import type { Controller } from "../controller/controller.ts";
import type { Manager } from "../controller/manager.ts";
import {
  anyOf,
  dataChanged,
  generationChanged,
  readyReasonChanged,
  statusChanged,
} from "../controller/predicates.ts";
import type { OperatorInformers } from "../watch-scope.ts";
import { type IntegrationReconcilerDeps, integrationKey, integrationReconciler } from "./integration.ts";
import { secretIsRead } from "./namespace-inputs.ts";

// The WebhookIntegration controller's wiring: it owns the namespace's routing, so any change
// in the namespace that the routing depends on reconciles the namespace's integration key.
//   for:     WebhookIntegration spec changes; its status changes too, coalesced for half a
//            second: the reconciler writes only what differs from the cached status, which may
//            not hold its last write yet
//   watches: Webhook spec changes, and a Webhook's own Ready reason (a 410 Gone takes it out
//            of the routing), coalesced for half a second; Secret data the namespace reads
//            (signing secret, header values)

/** How long a webhook change waits for others before the namespace's routing is compiled. */
export const WEBHOOK_CHANGE_DELAY_MS = 500;

export function addIntegrationController(
  manager: Pick<Manager, "controller">,
  informers: OperatorInformers,
  deps: IntegrationReconcilerDeps,
  workers: number,
): Controller {
  const namespaceKey = (object: KubernetesObject) => integrationKey(object.metadata?.namespace ?? "");
  return manager.controller({
    name: "webhookintegration",
    for: informers.integrations,
    forPredicate: generationChanged,
    watches: [
      {
        // its own status changes, coalesced like webhook changes: during a bulk apply every
        // reconcile writes a new status, and waking at once on it doubled the reconciles (each
        // compiling the whole routing) without anything new to compile
        informer: informers.integrations,
        predicate: statusChanged(),
        delayMs: WEBHOOK_CHANGE_DELAY_MS,
      },
      {
        informer: informers.webhooks,
        predicate: anyOf(generationChanged, readyReasonChanged),
        map: namespaceKey,
        // each reconcile compiles the namespace's whole routing: a bulk apply of webhooks
        // coalesces into about two reconciles a second instead of one per webhook
        delayMs: WEBHOOK_CHANGE_DELAY_MS,
      },
      {
        informer: informers.secrets,
        predicate: dataChanged,
        map: (secret) =>
          secretIsRead(deps.caches, secret, deps.generatedSecret) ? namespaceKey(secret) : undefined,
      },
    ],
    reconcile: integrationReconciler(deps),
    workers,
  });
}
