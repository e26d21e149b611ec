import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import type { Counter, Registry } from "prom-client";
import type { ResourceType } from "./controller/kube.ts";
import { counter } from "./controller/metrics.ts";
import { mergePatch, patchObject, patchStatus } from "./controller/status.ts";

// Every write the operator makes to the API server goes through here, so that
// `dataforce_operator_api_writes_total{resource,verb}` counts all of them: the
// number the mirror's rate limit is about, and what a dashboard watches.

export interface Target {
  namespace: string;
  name: string;
}

export type WriteVerb = "create" | "patch" | "delete";

export class ApiWrites {
  readonly customObjects: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly writes: Counter<"resource" | "verb">;

  constructor(kc: KubeConfig, registry: Registry) {
    this.customObjects = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.writes = counter(
      registry,
      "dataforce_operator_api_writes_total",
      "Writes the operator sent to the Kubernetes API server, by resource and verb",
      ["resource", "verb"],
    );
  }

  async create<T extends object>(type: ResourceType, namespace: string, body: T): Promise<T> {
    this.count(type.plural, "create");
    return (await this.customObjects.createNamespacedCustomObject({
      group: type.group,
      version: type.version,
      plural: type.plural,
      namespace,
      body,
    })) as T;
  }

  /** JSON merge patch of the status subresource. */
  async patchStatus(type: ResourceType, target: Target, status: Record<string, unknown>): Promise<void> {
    this.count(`${type.plural}/status`, "patch");
    await patchStatus(this.customObjects, { ...type, ...target }, status);
  }

  /** JSON merge patch of the main resource (metadata of any object; spec only of the operator's own). */
  async patch(type: ResourceType, target: Target, patch: Record<string, unknown>): Promise<void> {
    this.count(type.plural, "patch");
    await patchObject(this.customObjects, { ...type, ...target }, patch);
  }

  /** Deletes one object, only if it still has `uid` (never a newer object of the same name). */
  async delete(type: ResourceType, target: Target, uid?: string): Promise<void> {
    this.count(type.plural, "delete");
    await this.customObjects.deleteNamespacedCustomObject({
      group: type.group,
      version: type.version,
      plural: type.plural,
      ...target,
      ...(uid ? { body: { preconditions: { uid } } } : {}),
    });
  }

  async createSecret(namespace: string, body: V1Secret): Promise<V1Secret> {
    this.count("secrets", "create");
    return this.core.createNamespacedSecret({ namespace, body });
  }

  /**
   * Adds `labels` to the Secret `name` when it carries `ownerLabel` (one the operator generated);
   * returns the patched Secret, or undefined when it is not the operator's (left untouched).
   */
  async labelGeneratedSecret(
    namespace: string,
    name: string,
    labels: Record<string, string>,
    ownerLabel: string,
  ): Promise<V1Secret | undefined> {
    const current = await this.core.readNamespacedSecret({ name, namespace });
    if (current.metadata?.labels?.[ownerLabel] === undefined) return undefined;
    this.count("secrets", "patch");
    return this.core.patchNamespacedSecret({ name, namespace, body: { metadata: { labels } } }, mergePatch);
  }

  /**
   * Replaces data keys of a Secret the operator generated, only if it is still at
   * `resourceVersion` (else 409: the caller reconciles again with what is there now).
   */
  async patchGeneratedSecretData(
    namespace: string,
    name: string,
    resourceVersion: string,
    data: Record<string, string>,
  ): Promise<V1Secret> {
    const encoded = Object.fromEntries(
      Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString("base64")]),
    );
    this.count("secrets", "patch");
    return this.core.patchNamespacedSecret(
      { name, namespace, body: { metadata: { resourceVersion }, data: encoded } },
      mergePatch,
    );
  }

  private count(resource: string, verb: WriteVerb): void {
    this.writes.inc({ resource, verb });
  }
}
