import type { Controller } from "../controller/controller.ts";
import type { Manager } from "../controller/manager.ts";
import { annotationsChanged } from "../controller/predicates.ts";
import type { OperatorInformers } from "../watch-scope.ts";
import { type RetryReconcilerDeps, retryReconciler } from "./retry.ts";

// The retry controller's wiring: WebhookEvents whose annotations changed (a retry request);
// the mirror's own status writes do not wake it.

export function addRetryController(
  manager: Pick<Manager, "controller">,
  informers: OperatorInformers,
  deps: RetryReconcilerDeps,
  workers: number,
): Controller {
  return manager.controller({
    name: "webhookevent_retry",
    for: informers.events,
    forPredicate: annotationsChanged,
    reconcile: retryReconciler(deps),
    workers,
  });
}
