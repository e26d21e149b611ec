import { CustomObjectsApi, EventsV1Api, type KubernetesObject } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { createTestNamespace, kubeClient, kubectl } from "../../test/env/kubectl.ts";
import { setCondition } from "./conditions.ts";
import { EventRecorder, REPORTING_CONTROLLER } from "./events.ts";
import { mergePatch, patchObject, patchStatus, updateStatus } from "./status.ts";

// A throwaway CRD of our own, so these tests depend only on the machinery (the
// product CRDs have their own tests in test/crds).
const widgets = { group: "machinery-test.dataforce.io", version: "v1", plural: "widgets" };
const crd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `${widgets.plural}.${widgets.group}` },
  spec: {
    group: widgets.group,
    scope: "Namespaced",
    names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
              status: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
            },
          },
        },
      },
    ],
  },
};

type Widget = KubernetesObject & { spec: Record<string, unknown>; status?: Record<string, unknown> };

describe("status and events helpers on a real API server", () => {
  const api = () => kubeClient().makeApiClient(CustomObjectsApi);

  beforeAll(async () => {
    await kubectl(["apply", "--server-side", "-f", "-"], { input: JSON.stringify(crd) });
    await kubectl(["wait", "--for=condition=Established", `crd/${crd.metadata.name}`, "--timeout=30s"]);
  });

  async function createWidget(namespace: string): Promise<Widget> {
    return (await api().createNamespacedCustomObject({
      ...widgets,
      namespace,
      body: { apiVersion: `${widgets.group}/v1`, kind: "Widget", metadata: { name: "w" }, spec: { size: 3 } },
    })) as Widget;
  }

  it("patchStatus merge-patches status only: spec is untouched and generation does not move", async () => {
    const ns = await createTestNamespace("status-patch");
    onTestFinished(() => ns.delete());
    const created = await createWidget(ns.name);
    const conditions = setCondition([], {
      type: "Ready",
      status: "True",
      reason: "Active",
      message: "",
      observedGeneration: created.metadata?.generation ?? 0,
    });
    const updated = await patchStatus<Widget>(
      api(),
      { ...widgets, namespace: ns.name, name: "w" },
      { conditions, observedGeneration: created.metadata?.generation, extra: "x" },
    );
    expect(updated.status).toEqual({ conditions, observedGeneration: 1, extra: "x" });
    expect(updated.spec).toEqual({ size: 3 });
    expect(updated.metadata?.generation).toBe(created.metadata?.generation);

    // A merge patch: fields not named stay; null removes.
    const merged = await patchStatus<Widget>(
      api(),
      { ...widgets, namespace: ns.name, name: "w" },
      { extra: null },
    );
    expect(merged.status).toEqual({ conditions, observedGeneration: 1 });

    // Spec in a status patch is ignored by the status subresource.
    const sneaky = await api().patchNamespacedCustomObjectStatus(
      { ...widgets, namespace: ns.name, name: "w", body: { spec: { size: 99 }, status: { a: 1 } } },
      mergePatch,
    );
    expect((sneaky as Widget).spec).toEqual({ size: 3 });
  });

  it("updateStatus writes the minimal patch, skips no-op writes, and honours an optimistic lock", async () => {
    const ns = await createTestNamespace("status-update");
    onTestFinished(() => ns.delete());
    const created = await createWidget(ns.name);
    const first = await updateStatus(api(), widgets, created, { phase: "QUEUED", attempts: 0 });
    expect(first?.status).toEqual({ phase: "QUEUED", attempts: 0 });
    expect(await updateStatus(api(), widgets, first!, { phase: "QUEUED", attempts: 0 })).toBeUndefined();
    const second = await updateStatus(api(), widgets, first!, { phase: "SENT" });
    expect(second?.status).toEqual({ phase: "SENT" });

    // Written from a stale copy with a lock: 409.
    await expect(
      updateStatus(
        api(),
        widgets,
        first!,
        { phase: "FAILED" },
        { resourceVersion: first!.metadata!.resourceVersion! },
      ),
    ).rejects.toMatchObject({ code: 409 });

    const labelled = await patchObject<Widget>(
      api(),
      { ...widgets, namespace: ns.name, name: "w" },
      { metadata: { labels: { "webhooks.dataforce.io/phase": "SENT" } } },
    );
    expect(labelled.metadata?.labels).toEqual({ "webhooks.dataforce.io/phase": "SENT" });
    expect(labelled.status).toEqual({ phase: "SENT" });
  });

  it("records events.k8s.io Events and folds repeats into a series", async () => {
    const ns = await createTestNamespace("events");
    onTestFinished(() => ns.delete());
    const widget = await createWidget(ns.name);
    const recorder = new EventRecorder(kubeClient(), { reportingInstance: "test-1", heartbeatMs: 200 });
    onTestFinished(() => recorder.stop());

    recorder.record(widget, {
      type: "Warning",
      reason: "DeliveryFailed",
      action: "Deliver",
      note: "HTTP 500",
    });
    recorder.record(widget, { type: "Normal", reason: "Ready", action: "Reconcile" });
    for (let i = 0; i < 4; i++) {
      recorder.record(widget, {
        type: "Warning",
        reason: "DeliveryFailed",
        action: "Deliver",
        note: "HTTP 500",
      });
    }
    await recorder.flush();

    const events = kubeClient().makeApiClient(EventsV1Api);
    await vi.waitFor(
      async () => {
        const list = await events.listNamespacedEvent({ namespace: ns.name });
        const failed = list.items.filter((e) => e.reason === "DeliveryFailed");
        expect(failed).toHaveLength(1);
        expect(failed[0]?.series?.count).toBe(5);
        expect(list.items).toHaveLength(2);
      },
      { timeout: 5_000, interval: 200 },
    );
    const list = await events.listNamespacedEvent({ namespace: ns.name });
    const failed = list.items.find((e) => e.reason === "DeliveryFailed")!;
    expect(failed).toMatchObject({
      type: "Warning",
      action: "Deliver",
      note: "HTTP 500",
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: "test-1",
      regarding: { kind: "Widget", name: "w", namespace: ns.name, uid: widget.metadata?.uid },
    });
    // kubectl shows them the usual way.
    const described = await kubectl(["get", "events", "-n", ns.name, "-o", "name"]);
    expect(described.stdout.trim().split("\n")).toHaveLength(2);
  });

  it("drops events beyond the rate limit instead of flooding the API server", async () => {
    const ns = await createTestNamespace("events-limit");
    onTestFinished(() => ns.delete());
    const widget = await createWidget(ns.name);
    const recorder = new EventRecorder(kubeClient(), { reportingInstance: "test-2", qps: 0.001, burst: 3 });
    onTestFinished(() => recorder.stop());
    for (let i = 0; i < 10; i++)
      recorder.record(widget, { type: "Normal", reason: "Tick", action: "Count", note: `${i}` });
    await recorder.flush();
    expect(recorder.dropped).toBe(7);
    const list = await kubeClient().makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: ns.name });
    expect(list.items.map((e) => e.note).sort()).toEqual(["0", "1", "2"]);
  });
});
