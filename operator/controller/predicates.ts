import { isDeepStrictEqual } from "node:util";
import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import type { WatchEvent } from "./controller.ts";

// Event filters for controllers' watches: which changes of a watched object are worth a
// reconcile. A resync (same resourceVersion) always passes, so periodic resyncs still heal.

/**
 * Passes creations, deletions, spec changes (metadata.generation) and resyncs; drops
 * updates that touched only status or metadata, such as our own status writes.
 */
export function generationChanged<S extends KubernetesObject>(event: WatchEvent<S>): boolean {
  if (event.type !== "update") return true;
  const { old, object } = event;
  if (old.metadata?.resourceVersion === object.metadata?.resourceVersion) return true; // resync
  if (object.metadata?.generation === undefined) return true;
  return old.metadata?.generation !== object.metadata.generation;
}

/** Passes updates that changed annotations (e.g. a retry request); others as `generationChanged` does not. */
export function annotationsChanged<S extends KubernetesObject>(event: WatchEvent<S>): boolean {
  if (event.type !== "update") return true;
  return (
    JSON.stringify(event.old.metadata?.annotations ?? {}) !==
    JSON.stringify(event.object.metadata?.annotations ?? {})
  );
}

export function anyOf<S>(
  ...predicates: Array<(event: WatchEvent<S>) => boolean>
): (event: WatchEvent<S>) => boolean {
  return (event) => predicates.some((p) => p(event));
}

/** Objects without a generation (Secrets, ConfigMaps): any change of `data`, and every resync, passes. */
export function dataChanged(event: WatchEvent<KubernetesObject>): boolean {
  if (event.type !== "update") return true;
  const before = event.old as V1Secret;
  const after = event.object as V1Secret;
  if (before.metadata?.resourceVersion === after.metadata?.resourceVersion) return true;
  return JSON.stringify(before.data ?? {}) !== JSON.stringify(after.data ?? {});
}

/**
 * Passes updates that changed the object's `status` (only `fields` of it, when named). A
 * reconciler that compares what it wants with the cached status needs them, its own writes
 * included: when it last looked, the cache may not yet have held its previous write, and what
 * it wanted then matched the older status it saw, so it wrote nothing and that write stands.
 */
export function statusChanged(...fields: string[]): (event: WatchEvent<KubernetesObject>) => boolean {
  const pick = (object: KubernetesObject): unknown => {
    const status = (object as { status?: Record<string, unknown> }).status ?? {};
    return fields.length === 0 ? status : fields.map((field) => status[field]);
  };
  return (event) => {
    if (event.type !== "update") return true;
    return !isDeepStrictEqual(pick(event.old), pick(event.object));
  };
}

/** The reason of the object's Ready condition changed (a status update that other reconcilers act on). */
export function readyReasonChanged(event: WatchEvent<KubernetesObject>): boolean {
  if (event.type !== "update") return false;
  const reason = (object: KubernetesObject) =>
    (
      object as { status?: { conditions?: Array<{ type: string; reason: string }> } }
    ).status?.conditions?.find((c) => c.type === "Ready")?.reason;
  return reason(event.old) !== reason(event.object);
}
