import { isDeepStrictEqual } from "node:util";
import type { Keyspace } from "../../contract/keys.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import {
  deleteNamespaceRouting,
  NamespaceRoutingSchema,
  readNamespaceRouting,
  writeNamespaceRouting,
} from "../../contract/routing-config.ts";
import type { SecretBox } from "../../contract/secret-box.ts";
import type { RoutingAction } from "./plan.ts";

export type RoutingChange = "written" | "deleted" | "unchanged" | "kept";

/** Where the routing goes: RedisClient, the keyspace, and the box that seals its secrets. */
export interface RoutingStore {
  redis: RedisClient;
  keys: Keyspace;
  box: SecretBox;
}

/**
 * Makes the dispatcher's routing of one namespace what `action` says. Every write bumps
 * the routing revision that all dispatchers reload on, so an unchanged document is not
 * written again (a resync or a status-only change costs one HGET) — unless it was sealed with
 * an older encryption key, which a rewrite retires.
 */
export async function applyRouting(
  store: RoutingStore,
  namespace: string,
  action: RoutingAction,
): Promise<RoutingChange> {
  const { redis, keys, box } = store;
  const current = await readNamespaceRouting(redis, namespace, keys, box);
  if (action.action === "keep") {
    // The last document stays, minus the webhooks that no longer may deliver.
    const kept = current?.routing;
    if (!kept) return "kept";
    const webhooks = kept.webhooks.filter((route) => {
      const uid = action.retain.get(route.name);
      return uid !== undefined && (uid === "" || route.uid === "" || uid === route.uid);
    });
    if (webhooks.length === kept.webhooks.length && !current.sealedWithOlderKey) return "kept";
    await writeNamespaceRouting(redis, { ...kept, webhooks }, keys, box);
    return "written";
  }
  if (action.action === "delete") {
    if (current === null) return "unchanged";
    await deleteNamespaceRouting(redis, namespace, keys);
    return "deleted";
  }
  const desired = NamespaceRoutingSchema.parse(action.routing);
  if (current !== null && !current.sealedWithOlderKey && isDeepStrictEqual(current.routing, desired)) {
    return "unchanged";
  }
  await writeNamespaceRouting(redis, desired, keys, box);
  return "written";
}
