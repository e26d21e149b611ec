import { isDeepStrictEqual } from "node:util";
import type { Redis } from "ioredis";
import type { Keyspace } from "../../contract/keys.ts";
import {
  deleteNamespaceRouting,
  type NamespaceRouting,
  NamespaceRoutingSchema,
  writeNamespaceRouting,
} from "../../contract/routing-config.ts";
import type { RoutingAction } from "./plan.ts";

export type RoutingChange = "written" | "deleted" | "unchanged" | "kept";

/**
 * Makes the dispatcher's routing of one namespace what `action` says. Every write bumps
 * the routing revision that all dispatchers reload on, so an unchanged document is not
 * written again (a resync or a status-only change costs one HGET).
 */
export async function applyRouting(
  redis: Redis,
  keys: Keyspace,
  namespace: string,
  action: RoutingAction,
): Promise<RoutingChange> {
  const current = await redis.hget(keys.routing, namespace);
  if (action.action === "keep") {
    // The last document stays, minus the webhooks that no longer may deliver.
    const kept = current === null ? undefined : parseOrUndefined(current);
    if (!kept) return "kept";
    const webhooks = kept.webhooks.filter((route) => {
      const uid = action.retain.get(route.name);
      return uid !== undefined && (uid === "" || route.uid === "" || uid === route.uid);
    });
    if (webhooks.length === kept.webhooks.length) return "kept";
    await writeNamespaceRouting(redis, { ...kept, webhooks }, keys);
    return "written";
  }
  if (action.action === "delete") {
    if (current === null) return "unchanged";
    await deleteNamespaceRouting(redis, namespace, keys);
    return "deleted";
  }
  const desired = NamespaceRoutingSchema.parse(action.routing);
  if (current !== null && isDeepStrictEqual(parseOrUndefined(current), desired)) return "unchanged";
  await writeNamespaceRouting(redis, desired, keys);
  return "written";
}

function parseOrUndefined(json: string): NamespaceRouting | undefined {
  try {
    return NamespaceRoutingSchema.parse(JSON.parse(json));
  } catch {
    return undefined;
  }
}
