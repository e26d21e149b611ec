import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { NamespacedStore } from "./store.ts";

const object = (namespace: string | undefined, name: string, rv = "1"): KubernetesObject => ({
  metadata: { name, resourceVersion: rv, ...(namespace === undefined ? {} : { namespace }) },
});

describe("NamespacedStore", () => {
  it("lists one namespace's objects, or all, and follows updates and deletes", () => {
    const store = new NamespacedStore<KubernetesObject>();
    store.set("a/x", object("a", "x"));
    store.set("a/y", object("a", "y"));
    store.set("b/x", object("b", "x"));
    store.set("cluster", object(undefined, "cluster"));
    expect(store.list("a").map((o) => o.metadata?.name)).toEqual(["x", "y"]);
    expect(store.list("b")).toHaveLength(1);
    expect(store.list()).toHaveLength(4);
    expect(store.list("")).toEqual([object(undefined, "cluster")]);

    store.set("a/x", object("a", "x", "2"));
    expect(store.list("a").find((o) => o.metadata?.name === "x")?.metadata?.resourceVersion).toBe("2");
    expect(store.size).toBe(4);

    store.delete("a/x");
    store.delete("a/y");
    store.delete("missing");
    expect(store.list("a")).toEqual([]);
    expect(store.get("a/x")).toBeUndefined();
    expect(store.size).toBe(2);
  });

  it("returns a list the caller may change without changing the store", () => {
    const store = new NamespacedStore<KubernetesObject>();
    store.set("a/x", object("a", "x"));
    store.list("a").pop();
    expect(store.list("a")).toHaveLength(1);
  });
});
