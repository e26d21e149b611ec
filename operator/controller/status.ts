import { isDeepStrictEqual } from "node:util";
import {
  type ConfigurationOptions,
  type CustomObjectsApi,
  type KubernetesObject,
  type ObservableMiddleware,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import type { ResourceType } from "./kube.ts";

// Writing custom resources the way that works: client-node's generated patch calls
// default to JSON Patch (which fails on a missing /status), KubernetesObjectApi to
// strategic merge (which custom resources reject), so every call here names
// `application/merge-patch+json`. Status goes through the status subresource, so a
// status write can never change spec (the GitOps tool's half of the object).

/** Options for any generated patch call to send a JSON merge patch. */
export const mergePatch: ConfigurationOptions<ObservableMiddleware> = setHeaderOptions(
  "Content-Type",
  PatchStrategy.MergePatch,
);

export interface ObjectTarget extends ResourceType {
  namespace: string;
  name: string;
}

export interface PatchOptions {
  /** Fail with 409 unless the object still has this resourceVersion (optimistic lock). */
  resourceVersion?: string;
  /** Recorded in managedFields. Default `dataforce-webhooks-operator`. */
  fieldManager?: string;
}

const FIELD_MANAGER = "dataforce-webhooks-operator";

/** Merge-patches `status` of a namespaced custom resource through its status subresource. */
export async function patchStatus<T extends KubernetesObject>(
  api: CustomObjectsApi,
  target: ObjectTarget,
  status: Record<string, unknown>,
  options: PatchOptions = {},
): Promise<T> {
  const body = {
    ...(options.resourceVersion ? { metadata: { resourceVersion: options.resourceVersion } } : {}),
    status,
  };
  return (await api.patchNamespacedCustomObjectStatus(
    { ...target, body, fieldManager: options.fieldManager ?? FIELD_MANAGER },
    mergePatch,
  )) as T;
}

/** Merge-patches the main resource (metadata, or spec of objects the operator owns). */
export async function patchObject<T extends KubernetesObject>(
  api: CustomObjectsApi,
  target: ObjectTarget,
  patch: Record<string, unknown>,
  options: PatchOptions = {},
): Promise<T> {
  const body = options.resourceVersion
    ? {
        ...patch,
        metadata: { ...(patch.metadata as object | undefined), resourceVersion: options.resourceVersion },
      }
    : patch;
  return (await api.patchNamespacedCustomObject(
    { ...target, body, fieldManager: options.fieldManager ?? FIELD_MANAGER },
    mergePatch,
  )) as T;
}

/**
 * Makes `object.status` equal to `desired` with the smallest merge patch, and writes
 * nothing when they are already equal (so a steady-state reconcile costs no API write).
 * Returns the updated object, or undefined when no write was needed.
 */
export async function updateStatus<T extends KubernetesObject & { status?: unknown }>(
  api: CustomObjectsApi,
  type: ResourceType,
  object: T,
  desired: Record<string, unknown>,
  options: PatchOptions = {},
): Promise<T | undefined> {
  const patch = createMergePatch(object.status ?? {}, desired);
  if (patch === undefined) return undefined;
  const target = { ...type, namespace: object.metadata?.namespace ?? "", name: object.metadata?.name ?? "" };
  return patchStatus<T>(api, target, patch as Record<string, unknown>, options);
}

/**
 * The RFC 7386 merge patch that turns `from` into `to` (`undefined` when equal):
 * objects are diffed key by key, removed keys become null, anything else is replaced.
 */
export function createMergePatch(from: unknown, to: unknown): unknown {
  if (isPlainObject(from) && isPlainObject(to)) {
    const patch: Record<string, unknown> = {};
    for (const key of Object.keys(from)) {
      if (!(key in to) || to[key] === undefined) patch[key] = null;
    }
    for (const [key, value] of Object.entries(to)) {
      if (value === undefined) continue;
      const sub = createMergePatch(from[key], value);
      if (sub !== undefined) patch[key] = sub;
    }
    return Object.keys(patch).length === 0 ? undefined : patch;
  }
  return isDeepStrictEqual(from, to) ? undefined : to;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
