import type { KubernetesObject } from "@kubernetes/client-node";

/**
 * An informer's objects by key (`namespace/name`, or `name` when cluster-scoped), indexed by
 * namespace like client-go's cache.Indexer with its namespace index: listing one namespace
 * costs its own objects, not every object of the resource. Controllers list a namespace on
 * every reconcile and every mapped watch event, so with thousands of objects across many
 * namespaces a scan of the whole cache each time would make their work quadratic.
 */
export class NamespacedStore<T extends KubernetesObject> {
  private readonly byKey = new Map<string, T>();
  private readonly byNamespace = new Map<string, Map<string, T>>();

  get size(): number {
    return this.byKey.size;
  }

  get(key: string): T | undefined {
    return this.byKey.get(key);
  }

  set(key: string, object: T): void {
    const namespace = object.metadata?.namespace ?? "";
    const old = this.byKey.get(key);
    const oldNamespace = old?.metadata?.namespace ?? "";
    if (old && oldNamespace !== namespace) this.unindex(oldNamespace, key);
    this.byKey.set(key, object);
    const members = this.byNamespace.get(namespace) ?? new Map<string, T>();
    this.byNamespace.set(namespace, members);
    members.set(key, object);
  }

  delete(key: string): void {
    const old = this.byKey.get(key);
    if (!old) return;
    this.byKey.delete(key);
    this.unindex(old.metadata?.namespace ?? "", key);
  }

  entries(): IterableIterator<[string, T]> {
    return this.byKey.entries();
  }

  /** Objects of one namespace, or all of them (a new array: the caller may keep it). */
  list(namespace?: string): T[] {
    if (namespace === undefined) return [...this.byKey.values()];
    return [...(this.byNamespace.get(namespace)?.values() ?? [])];
  }

  private unindex(namespace: string, key: string): void {
    const members = this.byNamespace.get(namespace);
    members?.delete(key);
    if (members?.size === 0) this.byNamespace.delete(namespace);
  }
}
