import type { KubernetesObject } from "@kubernetes/client-node";
import type { Informer, InformerHandlers, InformerOptions, InformerSource } from "./controller/informer.ts";
import type { Manager } from "./controller/manager.ts";

// Which namespaces the operator watches: all of them (one cluster-wide informer per
// resource), or a fixed list (one informer per resource and namespace, presented as
// one), like controller-runtime's cache.Options.DefaultNamespaces. A list lets several
// installations share a cluster, and lets tests run operators side by side.

/** The part of an Informer that controllers and caches use. */
export type SharedInformer = Pick<
  Informer<KubernetesObject>,
  "on" | "start" | "waitForSync" | "hasSynced" | "get" | "list"
>;

/** The informers every controller of the operator shares (one set per process). */
export interface OperatorInformers {
  integrations: SharedInformer;
  webhooks: SharedInformer;
  events: SharedInformer;
  secrets: SharedInformer;
}

export function scopedInformer(
  manager: Pick<Manager, "informer">,
  resource: Omit<InformerSource, "namespace">,
  namespaces: readonly string[],
  options: InformerOptions<KubernetesObject> = {},
): SharedInformer {
  if (namespaces.length === 0) return manager.informer(resource, options);
  const byNamespace = new Map(
    namespaces.map((namespace) => [namespace, manager.informer({ ...resource, namespace }, options)]),
  );
  const all = [...byNamespace.values()];
  return {
    on(handlers: InformerHandlers<KubernetesObject>) {
      const unsubscribes = all.map((informer) => informer.on(handlers));
      return () => {
        for (const unsubscribe of unsubscribes) unsubscribe();
      };
    },
    start() {
      for (const informer of all) informer.start();
    },
    async waitForSync() {
      await Promise.all(all.map((informer) => informer.waitForSync()));
    },
    hasSynced: () => all.every((informer) => informer.hasSynced()),
    get: (name, namespace) =>
      namespace === undefined ? undefined : byNamespace.get(namespace)?.get(name, namespace),
    list: (namespace) =>
      namespace === undefined
        ? all.flatMap((informer) => informer.list())
        : (byNamespace.get(namespace)?.list(namespace) ?? []),
  };
}
