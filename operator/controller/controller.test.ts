import { setTimeout as sleep } from "node:timers/promises";
import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { describe, expect, it, vi } from "vitest";
import {
  Controller,
  type ControllerOptions,
  type EventSource,
  type ReconcileRequest,
  TerminalError,
  type WatchEvent,
} from "./controller.ts";
import type { InformerHandlers } from "./informer.ts";
import { objectKey } from "./kube.ts";
import {
  annotationsChanged,
  anyOf,
  dataChanged,
  generationChanged,
  readyReasonChanged,
  statusChanged,
} from "./predicates.ts";

/** An informer stand-in whose events the test emits by hand. */
class FakeSource<S extends KubernetesObject> implements EventSource<S> {
  private readonly objects = new Map<string, S>();
  private readonly handlers = new Set<InformerHandlers<S>>();
  private resolveSync!: () => void;
  private readonly synced = new Promise<void>((resolve) => {
    this.resolveSync = resolve;
  });
  started = false;

  on(handlers: InformerHandlers<S>): () => void {
    this.handlers.add(handlers);
    return () => this.handlers.delete(handlers);
  }
  start(): void {
    this.started = true;
  }
  waitForSync(): Promise<void> {
    return this.synced;
  }
  sync(): void {
    this.resolveSync();
  }
  list(namespace?: string): S[] {
    return [...this.objects.values()].filter(
      (o) => namespace === undefined || o.metadata?.namespace === namespace,
    );
  }
  put(obj: S): void {
    const old = this.objects.get(objectKey(obj));
    this.objects.set(objectKey(obj), obj);
    for (const h of this.handlers) old ? h.update?.(obj, old) : h.add?.(obj);
  }
  remove(obj: S): void {
    this.objects.delete(objectKey(obj));
    for (const h of this.handlers) h.delete?.(obj);
  }
}

function obj(
  namespace: string,
  name: string,
  extra: Partial<NonNullable<KubernetesObject["metadata"]>> = {},
) {
  return { apiVersion: "v1", kind: "Thing", metadata: { namespace, name, resourceVersion: "1", ...extra } };
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  const match = values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return match?.value ?? 0;
}

function setup(
  overrides: Partial<ControllerOptions<KubernetesObject>> = {},
  primary = new FakeSource<KubernetesObject>(),
) {
  const registry = new Registry();
  const calls: string[] = [];
  const reconcile = vi.fn(async (req: ReconcileRequest) => {
    calls.push(req.key);
  });
  const controller = new Controller({
    name: "things",
    for: primary,
    reconcile,
    registry,
    backoff: { baseDelayMs: 5, maxDelayMs: 50 },
    ...overrides,
  });
  return { primary, registry, calls, reconcile, controller };
}

describe("Controller", () => {
  it("waits for the informers to sync, reconciles every cached object, then follows events", async () => {
    const { primary, calls, controller } = setup();
    primary.put(obj("a", "one"));
    primary.put(obj("b", "two"));
    const starting = controller.start();
    expect(primary.started).toBe(true);
    await sleep(5);
    expect(calls).toEqual([]);
    primary.sync();
    await starting;
    await vi.waitFor(() => expect(calls.sort()).toEqual(["a/one", "b/two"]));
    primary.put(obj("a", "three"));
    primary.remove(obj("b", "two"));
    await vi.waitFor(() => expect(calls).toHaveLength(4));
    expect(calls.slice(2).sort()).toEqual(["a/three", "b/two"]);
    await controller.stop();
  });

  it("queues the start keys too, at every start: those of objects gone while no leader watched", async () => {
    let reads = 0;
    const { primary, calls, controller } = setup({
      startKeys: async () => {
        reads++;
        return ["gone/replay", "a/one"];
      },
    });
    primary.put(obj("a", "one"));
    primary.sync();
    await controller.start();
    await vi.waitFor(() => expect(calls.sort()).toEqual(["a/one", "gone/replay"]));
    await controller.stop();
    await controller.start();
    await vi.waitFor(() => expect(calls).toHaveLength(4));
    expect(reads).toBe(2);
    await controller.stop();
  });

  it("starts with the informers' objects when the start keys cannot be read", async () => {
    const { primary, calls, controller } = setup({
      startKeys: () => Promise.reject(new Error("Redis is down")),
    });
    primary.put(obj("a", "one"));
    primary.sync();
    await controller.start();
    await vi.waitFor(() => expect(calls).toEqual(["a/one"]));
    await controller.stop();
  });

  it("hands the reconciler a request split into namespace and name", async () => {
    const { primary, reconcile, controller } = setup();
    primary.put(obj("ns", "name"));
    primary.sync();
    await controller.start();
    await vi.waitFor(() => expect(reconcile).toHaveBeenCalled());
    expect(reconcile.mock.calls[0]?.[0]).toEqual({ key: "ns/name", namespace: "ns", name: "name" });
    await controller.stop();
  });

  it("retries a failing reconcile with backoff and counts errors and results", async () => {
    let attempts = 0;
    const { primary, registry, controller } = setup({
      reconcile: async () => {
        attempts++;
        if (attempts <= 2) throw new Error("API unavailable");
      },
    });
    primary.put(obj("a", "x"));
    primary.sync();
    await controller.start();
    await vi.waitFor(() => expect(attempts).toBe(3));
    await vi.waitFor(async () =>
      expect(await metric(registry, "controller_runtime_reconcile_total", { result: "success" })).toBe(1),
    );
    expect(await metric(registry, "controller_runtime_reconcile_total", { result: "error" })).toBe(2);
    expect(
      await metric(registry, "controller_runtime_reconcile_errors_total", { controller: "things" }),
    ).toBe(2);
    expect(await metric(registry, "workqueue_retries_total", { name: "things" })).toBe(2);
    const histogram = await registry.getSingleMetric("controller_runtime_reconcile_time_seconds")?.get();
    const count = histogram?.values.find((v) =>
      (v as { metricName?: string }).metricName?.endsWith("_count"),
    );
    expect(count?.value).toBe(3);
    await controller.stop();
  });

  it("does not retry a TerminalError", async () => {
    let attempts = 0;
    const { primary, registry, controller } = setup({
      reconcile: async () => {
        attempts++;
        throw new TerminalError("invalid spec");
      },
    });
    primary.put(obj("a", "x"));
    primary.sync();
    await controller.start();
    await vi.waitFor(() => expect(attempts).toBe(1));
    await sleep(30);
    expect(attempts).toBe(1);
    expect(await metric(registry, "controller_runtime_reconcile_errors_total", {})).toBe(1);
    await controller.stop();
  });

  it("requeues after the requested delay, or with backoff on requeue: true", async () => {
    const seen: number[] = [];
    const { primary, registry, controller } = setup({
      reconcile: async () => {
        seen.push(performance.now());
        if (seen.length === 1) return { requeueAfter: 40 };
        if (seen.length === 2) return { requeue: true };
        return undefined;
      },
    });
    primary.put(obj("a", "x"));
    primary.sync();
    await controller.start();
    await vi.waitFor(() => expect(seen).toHaveLength(3));
    expect(seen[1]! - seen[0]!).toBeGreaterThanOrEqual(38);
    expect(await metric(registry, "controller_runtime_reconcile_total", { result: "requeue_after" })).toBe(1);
    expect(await metric(registry, "controller_runtime_reconcile_total", { result: "requeue" })).toBe(1);
    await controller.stop();
  });

  it("maps changes of watched resources to primary keys and applies predicates", async () => {
    const secrets = new FakeSource<V1Secret>();
    const primary = new FakeSource<KubernetesObject>();
    const { calls, controller } = setup(
      {
        forPredicate: generationChanged,
        watches: [
          {
            informer: secrets,
            map: (secret) => primary.list(secret.metadata?.namespace ?? "").map(objectKey),
          },
        ],
      },
      primary,
    );
    primary.put(obj("team-a", "integration", { generation: 1 }));
    primary.put(obj("team-b", "integration", { generation: 1 }));
    primary.sync();
    secrets.sync();
    await controller.start();
    await vi.waitFor(() => expect(calls).toHaveLength(2));

    secrets.put({ metadata: { namespace: "team-a", name: "signing", resourceVersion: "5" } });
    await vi.waitFor(() => expect(calls).toHaveLength(3));
    expect(calls[2]).toBe("team-a/integration");

    // A status-only write (same generation) is filtered; a spec change is not.
    primary.put(obj("team-b", "integration", { generation: 1, resourceVersion: "2" }));
    primary.put(obj("team-b", "integration", { generation: 2, resourceVersion: "3" }));
    await vi.waitFor(() => expect(calls).toHaveLength(4));
    await sleep(20);
    expect(calls).toHaveLength(4);
    await controller.stop();
  });

  it("coalesces the changes of a delayed watch into one reconcile", async () => {
    const webhooks = new FakeSource<KubernetesObject>();
    const primary = new FakeSource<KubernetesObject>();
    const { calls, controller } = setup(
      { watches: [{ informer: webhooks, map: (o) => `${o.metadata?.namespace}/default`, delayMs: 50 }] },
      primary,
    );
    primary.put(obj("team-a", "default"));
    primary.sync();
    webhooks.sync();
    await controller.start();
    await vi.waitFor(() => expect(calls).toEqual(["team-a/default"]));

    for (let i = 0; i < 100; i++) webhooks.put(obj("team-a", `hook-${i}`));
    await sleep(20);
    expect(calls).toHaveLength(1); // still waiting for more changes
    await vi.waitFor(() => expect(calls).toHaveLength(2));
    await sleep(80);
    expect(calls).toEqual(["team-a/default", "team-a/default"]);
    await controller.stop();
  });

  it("stop waits for in-flight reconciles, aborts their signal, and the controller can start again", async () => {
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => {
      release = resolve;
    });
    let aborted = false;
    const calls: string[] = [];
    const { primary, controller } = setup({
      reconcile: async (req, signal) => {
        calls.push(req.key);
        if (calls.length === 1) {
          signal.addEventListener("abort", () => {
            aborted = true;
          });
          await blocked;
        }
      },
    });
    primary.put(obj("a", "x"));
    primary.sync();
    await controller.start();
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    let stopped = false;
    const stopping = controller.stop().then(() => {
      stopped = true;
    });
    await sleep(10);
    expect(aborted).toBe(true);
    expect(stopped).toBe(false);
    primary.put(obj("a", "y"));
    release();
    await stopping;
    expect(controller.running).toBe(false);
    await sleep(10);
    expect(calls).toEqual(["a/x"]);

    await controller.start();
    await vi.waitFor(() => expect(calls.slice(1).sort()).toEqual(["a/x", "a/y"]));
    await controller.stop();
  });
});

describe("predicates and mappers", () => {
  const base = obj("ns", "n", { generation: 1, resourceVersion: "1", annotations: { a: "1" } });
  const update = (
    metadata: Partial<NonNullable<KubernetesObject["metadata"]>>,
  ): WatchEvent<KubernetesObject> => ({
    type: "update",
    old: base,
    object: { ...base, metadata: { ...base.metadata, ...metadata } },
  });

  it("generationChanged passes spec changes and resyncs, not status-only writes", () => {
    expect(generationChanged(update({ resourceVersion: "2" }))).toBe(false);
    expect(generationChanged(update({ resourceVersion: "2", generation: 2 }))).toBe(true);
    expect(generationChanged(update({}))).toBe(true);
    expect(generationChanged({ type: "delete", object: base })).toBe(true);
  });

  it("annotationsChanged and anyOf combine", () => {
    const retry = update({ resourceVersion: "2", annotations: { a: "2" } });
    expect(generationChanged(retry)).toBe(false);
    expect(annotationsChanged(retry)).toBe(true);
    expect(anyOf(generationChanged, annotationsChanged)(retry)).toBe(true);
    expect(anyOf(generationChanged, annotationsChanged)(update({ resourceVersion: "2" }))).toBe(false);
  });

  it("dataChanged passes data changes and resyncs of generation-less objects, not metadata-only updates", () => {
    const secret = (resourceVersion: string, data: Record<string, string>, labels = {}): V1Secret => ({
      metadata: { namespace: "ns", name: "s", resourceVersion, labels },
      data,
    });
    const change = (old: V1Secret, object: V1Secret): WatchEvent<KubernetesObject> => ({
      type: "update",
      old,
      object,
    });
    expect(dataChanged(change(secret("1", { k: "a" }), secret("2", { k: "b" })))).toBe(true);
    expect(dataChanged(change(secret("1", { k: "a" }), secret("1", { k: "a" })))).toBe(true); // resync
    expect(dataChanged(change(secret("1", { k: "a" }), secret("2", { k: "a" }, { x: "y" })))).toBe(false);
    expect(dataChanged({ type: "add", object: secret("1", {}) })).toBe(true);
  });

  it("statusChanged passes status changes (of the named fields only, when named), not spec-only ones", () => {
    const withStatus = (resourceVersion: string, status: Record<string, unknown>): KubernetesObject =>
      ({
        metadata: { namespace: "ns", name: "hook", resourceVersion, generation: 1 },
        status,
      }) as KubernetesObject;
    const change = (old: KubernetesObject, object: KubernetesObject): WatchEvent<KubernetesObject> => ({
      type: "update",
      old,
      object,
    });
    const pending = { conditions: [{ type: "Ready", status: "Unknown" }], lastDelivery: { phase: "SENT" } };
    const active = { conditions: [{ type: "Ready", status: "True" }], lastDelivery: { phase: "SENT" } };
    const delivered = { ...active, lastDelivery: { phase: "FAILED" } };
    // our own write reaching the cache: the status changed, the generation did not
    const own = change(withStatus("1", active), withStatus("2", pending));
    expect(generationChanged(own)).toBe(false);
    expect(statusChanged()(own)).toBe(true);
    expect(statusChanged("conditions")(own)).toBe(true);
    expect(statusChanged()(change(withStatus("2", active), withStatus("3", delivered)))).toBe(true);
    expect(statusChanged("conditions")(change(withStatus("2", active), withStatus("3", delivered)))).toBe(
      false,
    );
    expect(statusChanged()(change(withStatus("1", active), withStatus("2", structuredClone(active))))).toBe(
      false,
    );
    expect(statusChanged()(change(withStatus("1", active), withStatus("1", active)))).toBe(false); // resync
    expect(statusChanged()({ type: "add", object: withStatus("1", active) })).toBe(true);
  });

  it("readyReasonChanged passes only updates whose Ready reason changed", () => {
    const withReason = (reason: string, resourceVersion: string): KubernetesObject =>
      ({
        metadata: { namespace: "ns", name: "hook", resourceVersion },
        status: { conditions: [{ type: "Ready", status: "False", reason }] },
      }) as KubernetesObject;
    const change = (old: KubernetesObject, object: KubernetesObject): WatchEvent<KubernetesObject> => ({
      type: "update",
      old,
      object,
    });
    expect(readyReasonChanged(change(withReason("Active", "1"), withReason("EndpointGone", "2")))).toBe(true);
    expect(readyReasonChanged(change(withReason("Active", "1"), withReason("Active", "2")))).toBe(false);
    expect(readyReasonChanged({ type: "add", object: withReason("Active", "1") })).toBe(false);
  });
});
