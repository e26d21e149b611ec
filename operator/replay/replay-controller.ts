import type { Logger } from "pino";
import { readArchiveReplays } from "../../contract/archive-replays.ts";
import { onePartition } from "../../contract/partitions.ts";
import type { WebhookReplay } from "../api/v1alpha1/index.ts";
import { WebhookReplaySpecSchema } from "../api/v1alpha1/index.ts";
import { type Cache, cacheOf, specParser } from "../caches.ts";
import type { Controller } from "../controller/controller.ts";
import type { Manager } from "../controller/manager.ts";
import { generationChanged } from "../controller/predicates.ts";
import { WEBHOOK_REPLAYS } from "../resources.ts";
import { scopedInformer } from "../watch-scope.ts";
import { type ReplayReconcilerDeps, replayReconciler } from "./replay.ts";

// The WebhookReplay controller's wiring: its own informer (no other controller reads replays);
// spec changes and creations start a replay, and the reconciler paces itself with requeueAfter
// (one page a second). Its own status writes do not wake it: that would skip the pacing.

/**
 * The keys (`namespace/name`) of the WebhookReplays whose walk of the durable log store the
 * dispatchers still hold ({tag}:archive:replays, every partition).
 */
export async function storeWalkKeys(
  deps: Pick<ReplayReconcilerDeps, "redis" | "keys" | "partitions">,
): Promise<string[]> {
  const keys = new Set<string>();
  for (const partition of (deps.partitions ?? onePartition(deps.keys)).all)
    for (const { request } of await readArchiveReplays(deps.redis, partition))
      keys.add(`${request.namespace}/${request.replay}`);
  return [...keys];
}

export function addReplayController(
  manager: Pick<Manager, "controller" | "informer">,
  namespaces: readonly string[],
  deps: Omit<ReplayReconcilerDeps, "replays">,
  logger: Logger,
): { controller: Controller; replays: Cache<WebhookReplay> } {
  const informer = scopedInformer(manager, WEBHOOK_REPLAYS, namespaces, {
    parse: specParser("WebhookReplay", WebhookReplaySpecSchema, { logger }),
  });
  const replays = cacheOf<WebhookReplay>(informer);
  const controller = manager.controller({
    name: "webhookreplay",
    for: informer,
    forPredicate: generationChanged,
    reconcile: replayReconciler({ ...deps, replays }),
    // a replay deleted while no leader watched: its walk of the store is cancelled at the start
    startKeys: () => storeWalkKeys(deps),
    workers: 1,
  });
  return { controller, replays };
}
