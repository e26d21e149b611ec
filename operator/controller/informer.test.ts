import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Informer, type InformerOptions, ListPageLimit } from "./informer.ts";

// An in-process stand-in for the API server's list and watch of ConfigMaps in one
// namespace, so that failure modes a real server rarely shows on demand (410 Gone,
// 500s, dropped or hanging connections) can be produced exactly.
class FakeApiServer {
  readonly server: Server;
  private readonly objects = new Map<string, KubernetesObject>();
  private resourceVersion = 100;
  private readonly watchers = new Set<ServerResponse>();
  readonly lists: string[] = [];
  readonly watches: string[] = [];
  /** Status codes to answer the next list calls with (shifted per call). */
  listFailures: number[] = [];
  watchFailures: number[] = [];
  /** Leave the next list calls unanswered. */
  hangLists = 0;
  /** Answer watches with an empty 200 that ends at once. */
  closeWatchesAtOnce = false;
  /** Delay of every list answer. */
  listDelayMs = 0;
  private listsInFlight = 0;
  /** The most list calls answered at the same time. */
  maxListsInFlight = 0;

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  put(name: string, data: Record<string, string>, metadata: KubernetesObject["metadata"] = {}): void {
    const existed = this.objects.has(name);
    const obj: KubernetesObject & { data: Record<string, string> } = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { ...metadata, name, namespace: "ns", resourceVersion: String(++this.resourceVersion) },
      data,
    };
    this.objects.set(name, obj);
    this.broadcast({ type: existed ? "MODIFIED" : "ADDED", object: obj });
  }

  /** Changes an object without telling watchers (as if the event was lost). */
  putSilently(name: string, data: Record<string, string>): void {
    const watchers = [...this.watchers];
    this.watchers.clear();
    this.put(name, data);
    for (const w of watchers) this.watchers.add(w);
  }

  remove(name: string, options: { silently?: boolean } = {}): void {
    const obj = this.objects.get(name);
    if (!obj) return;
    this.objects.delete(name);
    const gone = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.resourceVersion) } };
    if (!options.silently) this.broadcast({ type: "DELETED", object: gone });
  }

  /** What the API server sends when a watch's resourceVersion has been compacted away. */
  expireWatches(): void {
    this.broadcast({
      type: "ERROR",
      object: {
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        code: 410,
        reason: "Expired",
        message: "too old",
      },
    });
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }

  dropWatches(): void {
    for (const w of this.watchers) w.socket?.destroy();
    this.watchers.clear();
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  private broadcast(event: unknown): void {
    for (const w of this.watchers) w.write(`${JSON.stringify(event)}\n`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== "/api/v1/namespaces/ns/configmaps") {
      res.writeHead(404).end();
      return;
    }
    if (url.searchParams.get("watch") === "true") {
      this.watches.push(url.searchParams.get("resourceVersion") ?? "");
      const failure = this.watchFailures.shift();
      if (failure) {
        res.writeHead(failure, { "content-type": "application/json" }).end("{}");
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      if (this.closeWatchesAtOnce) {
        res.end();
        return;
      }
      res.flushHeaders();
      this.watchers.add(res);
      res.on("close", () => this.watchers.delete(res));
      return;
    }
    this.lists.push(url.search);
    if (this.hangLists > 0) {
      this.hangLists--;
      return;
    }
    this.listsInFlight++;
    this.maxListsInFlight = Math.max(this.maxListsInFlight, this.listsInFlight);
    res.on("close", () => this.listsInFlight--);
    if (this.listDelayMs > 0) {
      setTimeout(() => this.answerList(url, res), this.listDelayMs);
      return;
    }
    this.answerList(url, res);
  }

  private answerList(url: URL, res: ServerResponse): void {
    const failure = this.listFailures.shift();
    if (failure) {
      res.writeHead(failure, { "content-type": "application/json" });
      res.end(JSON.stringify({ kind: "Status", code: failure, message: "injected failure" }));
      return;
    }
    // Like the real API server: list items without apiVersion/kind, in pages of `limit`
    // (the continue token here is simply the offset).
    const all = [...this.objects.values()].map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
    const offset = Number(url.searchParams.get("continue") ?? 0);
    const limit = Number(url.searchParams.get("limit") ?? all.length) || all.length;
    const items = all.slice(offset, offset + limit);
    const next = offset + limit < all.length ? String(offset + limit) : undefined;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMapList",
        metadata: { resourceVersion: String(this.resourceVersion), ...(next ? { continue: next } : {}) },
        items,
      }),
    );
  }
}

type ConfigMap = KubernetesObject & { data?: Record<string, string> };

describe("Informer", () => {
  let api: FakeApiServer;
  let kc: KubeConfig;
  const informers: Informer<ConfigMap>[] = [];

  beforeEach(async () => {
    api = new FakeApiServer();
    const server = await api.start();
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server, skipTLSVerify: true }],
      users: [{ name: "nobody" }],
      contexts: [{ name: "fake", cluster: "fake", user: "nobody" }],
      currentContext: "fake",
    });
  });

  afterEach(async () => {
    await Promise.all(informers.splice(0).map((i) => i.stop()));
    await api.close();
  });

  function start(options: InformerOptions<ConfigMap> = {}, namespace = "ns") {
    const informer = new Informer<ConfigMap>(
      kc,
      { group: "", version: "v1", plural: "configmaps", namespace },
      { backoff: { initialMs: 10, maxMs: 50 }, ...options },
    );
    const events: string[] = [];
    informer.on({
      add: (o) => events.push(`add ${o.metadata?.name} ${JSON.stringify(o.data)}`),
      update: (o) => events.push(`update ${o.metadata?.name} ${JSON.stringify(o.data)}`),
      delete: (o) => events.push(`delete ${o.metadata?.name}`),
    });
    informers.push(informer);
    informer.start();
    return { informer, events };
  }

  it("lists, reports synced, then follows add/update/delete from the watch", async () => {
    api.put("a", { v: "1" });
    const { informer, events } = start();
    await informer.waitForSync();
    expect(informer.hasSynced()).toBe(true);
    expect(informer.get("a", "ns")?.kind).toBe("ConfigMap");
    expect(events).toEqual(['add a {"v":"1"}']);

    await vi.waitFor(() => expect(api.watcherCount).toBe(1));
    expect(api.watches).toEqual(["101"]);
    api.put("b", { v: "1" });
    api.put("a", { v: "2" });
    api.remove("b");
    await vi.waitFor(() => expect(events).toHaveLength(4));
    expect(events.slice(1)).toEqual(['add b {"v":"1"}', 'update a {"v":"2"}', "delete b"]);
    expect(informer.list().map((o) => o.metadata?.name)).toEqual(["a"]);
    expect(informer.list("other")).toEqual([]);
    expect(informer.getByKey("ns/a")?.data).toEqual({ v: "2" });
    expect(informer.lastSyncResourceVersion()).toBe("104");
  });

  it("re-lists after 410 Gone and reports what changed while it was not watching", async () => {
    api.put("a", { v: "1" });
    api.put("b", { v: "1" });
    const { informer, events } = start();
    await vi.waitFor(() => expect(api.watcherCount).toBe(1));
    api.putSilently("a", { v: "2" });
    api.remove("b", { silently: true });
    api.expireWatches();
    await vi.waitFor(() => expect(api.lists).toHaveLength(2));
    await vi.waitFor(() => expect(api.watcherCount).toBe(1));
    expect(events.slice(2).sort()).toEqual(['update a {"v":"2"}', "delete b"].sort());
    expect(informer.list()).toHaveLength(1);
  });

  it("keeps retrying a failing list with backoff (client-node's informer would stop)", async () => {
    api.listFailures = [500, 403, 503];
    api.put("a", { v: "1" });
    const { informer } = start();
    await informer.waitForSync();
    expect(api.lists).toHaveLength(4);
    expect(informer.get("a", "ns")).toBeDefined();
  });

  it("restarts a failed or dropped watch from the last resourceVersion without re-listing", async () => {
    const { informer, events } = start();
    await vi.waitFor(() => expect(api.watcherCount).toBe(1));
    api.put("a", { v: "1" });
    await vi.waitFor(() => expect(events).toHaveLength(1));
    api.watchFailures = [500, 500];
    api.dropWatches();
    await vi.waitFor(() => expect(api.watcherCount).toBe(1));
    expect(api.watches).toEqual(["100", "101", "101", "101"]);
    expect(api.lists).toHaveLength(1);
    api.put("a", { v: "2" });
    await vi.waitFor(() => expect(informer.get("a", "ns")?.data).toEqual({ v: "2" }));
  });

  it("backs off when watches end as soon as they open, instead of spinning", async () => {
    api.closeWatchesAtOnce = true;
    const { informer } = start({ backoff: { initialMs: 100, maxMs: 200 } });
    await informer.waitForSync();
    await new Promise((r) => setTimeout(r, 600));
    expect(api.watches.length).toBeGreaterThanOrEqual(2);
    expect(api.watches.length).toBeLessThanOrEqual(8);
  });

  it("resync re-lists and reports every object as updated", async () => {
    api.put("a", { v: "1" });
    api.put("b", { v: "1" });
    const { events } = start({ resyncPeriodMs: 150 });
    await vi.waitFor(() => expect(api.lists.length).toBeGreaterThanOrEqual(2), { timeout: 2000 });
    await vi.waitFor(() => expect(events.filter((e) => e.startsWith("update"))).toHaveLength(2));
    expect(events.slice(0, 4).sort()).toEqual(
      ['add a {"v":"1"}', 'add b {"v":"1"}', 'update a {"v":"1"}', 'update b {"v":"1"}'].sort(),
    );
  });

  it("a list slower than the resync period completes (the resync does not restart it)", async () => {
    api.put("a", { v: "1" });
    api.listDelayMs = 300;
    const { informer } = start({ resyncPeriodMs: 100 });
    await informer.waitForSync();
    expect(informer.list().map((o) => o.metadata?.name)).toEqual(["a"]);
  });

  it("parses each page as it arrives (one page of raw objects in memory at a time)", async () => {
    for (const name of ["a", "b", "c"]) api.put(name, { v: "1" });
    const pagesRequestedAtParse: number[] = [];
    const { informer } = start({
      pageSize: 1,
      parse: (raw) => {
        pagesRequestedAtParse.push(api.lists.length);
        return raw as ConfigMap;
      },
    });
    await informer.waitForSync();
    expect(api.lists).toHaveLength(3);
    expect(pagesRequestedAtParse).toEqual([1, 2, 3]);
    expect(informer.list()).toHaveLength(3);
  });

  it("caches objects without managedFields and kubectl's last-applied copy, listed or watched", async () => {
    const managedFields = [{ manager: "kubectl", operation: "Update", fieldsType: "FieldsV1", fieldsV1: {} }];
    const lastApplied = { "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"v":"1"}}' };
    api.put("a", { v: "1" }, { managedFields, annotations: lastApplied });
    const { informer } = start();
    await informer.waitForSync();
    await vi.waitFor(() => expect(api.watcherCount).toBe(1));
    api.put(
      "b",
      { v: "1" },
      { managedFields, annotations: { ...lastApplied, "webhooks.dataforce.io/retry": "t1" } },
    );
    await vi.waitFor(() => expect(informer.list()).toHaveLength(2));
    for (const object of informer.list()) {
      expect(object.metadata).not.toHaveProperty("managedFields");
      expect(object.metadata?.resourceVersion).toBeDefined();
    }
    expect(informer.get("a", "ns")?.metadata).not.toHaveProperty("annotations");
    // the annotations something reads stay
    expect(informer.get("b", "ns")?.metadata?.annotations).toEqual({ "webhooks.dataforce.io/retry": "t1" });
  });

  it("informers sharing a ListPageLimit fetch no more pages at once than it allows", async () => {
    for (const name of ["a", "b", "c"]) api.put(name, { v: "1" });
    api.listDelayMs = 50;
    const listPages = new ListPageLimit(1);
    const first = start({ pageSize: 1, listPages });
    const second = start({ pageSize: 1, listPages });
    await Promise.all([first.informer.waitForSync(), second.informer.waitForSync()]);
    expect(api.lists).toHaveLength(6);
    expect(api.maxListsInFlight).toBe(1);
    expect(second.informer.list()).toHaveLength(3);
  });

  it("waiting for a list page slot is not silence: the watchdog leaves it alone", async () => {
    api.put("a", { v: "1" });
    api.listDelayMs = 600;
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(line) });
    const listPages = new ListPageLimit(1);
    const first = start({ listPages });
    await vi.waitFor(() => expect(api.lists).toHaveLength(1));
    api.listDelayMs = 0; // only the first list is slow: the second waits 600 ms for its slot
    const second = start({ listPages, watchdogMs: 200, logger });
    await Promise.all([first.informer.waitForSync(), second.informer.waitForSync()]);
    expect(lines.filter((line) => line.includes("no sign of life"))).toEqual([]);
    expect(api.lists).toHaveLength(2);
  });

  it("the watchdog restarts a list that hangs", async () => {
    api.hangLists = 1;
    api.put("a", { v: "1" });
    const { informer } = start({ watchdogMs: 200 });
    await informer.waitForSync();
    expect(api.lists).toHaveLength(2);
  });

  it("leaves objects that parse rejects out of the cache", async () => {
    api.put("good", { v: "1" });
    api.put("bad", { v: "x" });
    const { informer } = start({
      parse: (raw) => {
        const cm = raw as ConfigMap;
        if (cm.data?.v === "x") throw new Error("bad value");
        return cm;
      },
    });
    await informer.waitForSync();
    expect(informer.list().map((o) => o.metadata?.name)).toEqual(["good"]);
  });

  it("stops promptly, even while backing off", async () => {
    api.listFailures = Array(100).fill(500);
    const { informer } = start({ backoff: { initialMs: 10_000, maxMs: 10_000 } });
    await vi.waitFor(() => expect(api.lists).toHaveLength(1));
    const started = performance.now();
    await informer.stop();
    expect(performance.now() - started).toBeLessThan(500);
    expect(informer.hasSynced()).toBe(false);
  });
});

describe("ListPageLimit", () => {
  it("runs at most `limit` at once, the others in the order they came", async () => {
    const limit = new ListPageLimit(2);
    const signal = new AbortController().signal;
    let active = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        limit.run(signal, async () => {
          active++;
          most = Math.max(most, active);
          order.push(i);
          await new Promise((resolve) => setTimeout(resolve, 10));
          active--;
        }),
      ),
    );
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  it("a waiter whose signal aborts leaves the queue without taking a slot", async () => {
    const limit = new ListPageLimit(1);
    let release: () => void = () => {};
    const holder = limit.run(new AbortController().signal, () => new Promise<void>((r) => (release = r)));
    const aborted = new AbortController();
    const waiter = limit.run(aborted.signal, async () => "ran");
    aborted.abort("stop");
    await expect(waiter).rejects.toBe("stop");
    release();
    await holder;
    await expect(limit.run(new AbortController().signal, async () => "next")).resolves.toBe("next");
  });
});
