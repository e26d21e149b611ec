import { createConnection, createServer, type Server, type Socket } from "node:net";
import { KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { createTestNamespace, kubeClient, kubectl } from "../../test/env/kubectl.ts";
import { Informer } from "./informer.ts";

/** A TCP proxy in front of the API server that a test can cut, to break watches for real. */
class CuttableProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private refusing = false;

  constructor(target: URL) {
    this.server = createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    if (address === null || typeof address === "string") throw new Error("no proxy address");
    return `https://127.0.0.1:${address.port}`;
  }

  /** Drops every open connection and refuses new ones until `heal()`. */
  cut(): void {
    this.refusing = true;
    for (const s of this.sockets) s.destroy();
  }

  heal(): void {
    this.refusing = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

async function viaProxy(): Promise<{ kc: KubeConfig; proxy: CuttableProxy }> {
  const direct = kubeClient();
  const proxy = new CuttableProxy(new URL(direct.getCurrentCluster()!.server));
  const server = await proxy.start();
  const config = JSON.parse(direct.exportConfig()) as { clusters: Array<{ cluster: { server: string } }> };
  for (const c of config.clusters) c.cluster.server = server;
  const kc = new KubeConfig();
  kc.loadFromString(JSON.stringify(config));
  return { kc, proxy };
}

function configMap(name: string, data: Record<string, string>, labels: Record<string, string> = {}): string {
  return JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, labels }, data });
}

describe("Informer on a real API server", () => {
  it("follows add, update and delete of ConfigMaps in one namespace, filtered by label", async () => {
    const ns = await createTestNamespace("informer");
    onTestFinished(() => ns.delete());
    await kubectl(["create", "-n", ns.name, "-f", "-"], {
      input: configMap("before", { v: "1" }, { app: "x" }),
    });
    const informer = new Informer<V1ConfigMap>(kubeClient(), {
      group: "",
      version: "v1",
      plural: "configmaps",
      namespace: ns.name,
      labelSelector: "app=x",
    });
    const events: string[] = [];
    informer.on({
      add: (cm) => events.push(`add ${cm.metadata?.name}`),
      update: (cm) => events.push(`update ${cm.metadata?.name} ${cm.data?.v}`),
      delete: (cm) => events.push(`delete ${cm.metadata?.name}`),
    });
    informer.start();
    onTestFinished(() => informer.stop());
    await informer.waitForSync();
    expect(informer.get("before", ns.name)).toMatchObject({
      kind: "ConfigMap",
      apiVersion: "v1",
      data: { v: "1" },
    });

    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("cm", { v: "1" }, { app: "x" }) });
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("unlabelled", { v: "1" }) });
    await kubectl(["patch", "configmap", "cm", "-n", ns.name, "--type=merge", "-p", '{"data":{"v":"2"}}']);
    await kubectl(["delete", "configmap", "before", "-n", ns.name]);
    await vi.waitFor(() => expect(events).toEqual(["add before", "add cm", "update cm 2", "delete before"]), {
      timeout: 10_000,
    });
    expect(informer.list().map((cm) => cm.metadata?.name)).toEqual(["cm"]);
  });

  it("recovers after its connection to the API server breaks, and catches up on what it missed", async () => {
    const ns = await createTestNamespace("informer-outage");
    onTestFinished(() => ns.delete());
    const { kc, proxy } = await viaProxy();
    onTestFinished(() => proxy.close());
    const informer = new Informer<V1ConfigMap>(
      kc,
      { group: "", version: "v1", plural: "configmaps", namespace: ns.name },
      { backoff: { initialMs: 100, maxMs: 400 } },
    );
    const events: string[] = [];
    informer.on({
      add: (cm) => events.push(`add ${cm.metadata?.name}`),
      update: (cm) => events.push(`update ${cm.metadata?.name} ${cm.data?.v}`),
      delete: (cm) => events.push(`delete ${cm.metadata?.name}`),
    });
    informer.start();
    onTestFinished(() => informer.stop());
    await informer.waitForSync();
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("a", { v: "1" }) });
    await vi.waitFor(() => expect(events).toContain("add a"), { timeout: 10_000 });

    // The watch dies and reconnecting fails for a while (client-node's informer would stop here).
    proxy.cut();
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("b", { v: "1" }) });
    await kubectl(["patch", "configmap", "a", "-n", ns.name, "--type=merge", "-p", '{"data":{"v":"2"}}']);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(informer.get("b", ns.name)).toBeUndefined();
    proxy.heal();

    await vi.waitFor(() => expect(informer.get("b", ns.name)).toBeDefined(), { timeout: 10_000 });
    await vi.waitFor(() => expect(informer.get("a", ns.name)?.data).toEqual({ v: "2" }), { timeout: 10_000 });
    expect(events).toEqual(expect.arrayContaining(["add b", "update a 2"]));

    // And it keeps watching afterwards.
    await kubectl(["delete", "configmap", "b", "-n", ns.name]);
    await vi.waitFor(() => expect(events).toContain("delete b"), { timeout: 10_000 });
  });
});
