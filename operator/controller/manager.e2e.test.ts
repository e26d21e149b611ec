import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { pino } from "pino";
import { describe, expect, inject, it, onTestFinished, vi } from "vitest";
import { createTestNamespace, kubeClient, kubectl } from "../../test/env/kubectl.ts";
import { Manager } from "./manager.ts";

const timings = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 300 };

function configMap(name: string): string {
  return JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data: { v: "1" } });
}

async function leaseHolder(namespace: string, name: string): Promise<string | undefined> {
  const { stdout } = await kubectl([
    "get",
    "lease",
    name,
    "-n",
    namespace,
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  return stdout;
}

/** A manager with one ConfigMap controller that records what it reconciles. */
function operator(
  namespace: string,
  identity: string,
  extra: {
    exit?: (code: number) => void;
    gracefulShutdownMs?: number;
    reconcile?: (key: string, signal: AbortSignal) => Promise<void>;
  } = {},
) {
  const reconciled: string[] = [];
  const { reconcile, ...options } = extra;
  const manager = new Manager({
    kubeConfig: kubeClient(),
    logger: pino({ enabled: false }),
    server: { host: "127.0.0.1", port: 0 },
    leaderElection: { namespace, name: "operator", identity, ...timings },
    ...options,
  });
  const configMaps = manager.informer<V1ConfigMap>({
    group: "",
    version: "v1",
    plural: "configmaps",
    namespace,
  });
  manager.controller({
    name: "configmaps",
    for: configMaps,
    reconcile: async ({ key }, signal) => {
      reconciled.push(key);
      await reconcile?.(key, signal);
    },
  });
  onTestFinished(() => manager.stop());
  const get = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${manager.address()?.port}${path}`);
    return { status: response.status, body: await response.text() };
  };
  return { manager, reconciled, get };
}

describe("Manager on a real API server", () => {
  it("serves probes and metrics, leads, and runs its controllers", async () => {
    const ns = await createTestNamespace("manager");
    onTestFinished(() => ns.delete());
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("first") });
    const { manager, reconciled, get } = operator(ns.name, "solo");
    await manager.start();
    expect((await get("/healthz")).status).toBe(200);
    await vi.waitFor(() => expect(manager.isLeader()).toBe(true), { timeout: 10_000 });
    // Ready once the leader's controllers run (a standby is ready once its caches are synced).
    await vi.waitFor(async () => expect((await get("/readyz")).status).toBe(200), { timeout: 10_000 });
    await vi.waitFor(() => expect(reconciled).toContain(`${ns.name}/first`), { timeout: 5_000 });
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("second") });
    await vi.waitFor(() => expect(reconciled).toContain(`${ns.name}/second`), { timeout: 5_000 });

    const metrics = await get("/metrics");
    expect(metrics.body).toMatch(
      /controller_runtime_reconcile_total\{controller="configmaps",result="success"\} [1-9]/,
    );
    expect(metrics.body).toContain('workqueue_depth{name="configmaps"}');
    expect(metrics.body).toContain("controller_runtime_reconcile_time_seconds_bucket");
    expect(metrics.body).toContain("process_cpu_seconds_total");
    expect(metrics.body).toMatch(/leader_election_master_status\{name="[^"]+"\} 1/);
    expect((await get("/nope")).status).toBe(404);

    await manager.stop();
    expect(await leaseHolder(ns.name, "operator")).toBe("");
  });

  it("runs the controllers on one of two replicas only, and the standby takes over on stop", async () => {
    const ns = await createTestNamespace("manager-ha");
    onTestFinished(() => ns.delete());
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("cm") });
    const a = operator(ns.name, "a");
    const b = operator(ns.name, "b");
    await Promise.all([a.manager.start(), b.manager.start()]);
    await vi.waitFor(
      () => expect([a.manager.isLeader(), b.manager.isLeader()].filter(Boolean)).toHaveLength(1),
      {
        timeout: 10_000,
      },
    );
    const [leader, standby] = a.manager.isLeader() ? [a, b] : [b, a];
    await vi.waitFor(() => expect(leader.reconciled).toEqual([`${ns.name}/cm`]), { timeout: 5_000 });
    // The standby is ready too (its caches are synced) but reconciles nothing.
    await vi.waitFor(async () => expect((await standby.get("/readyz")).status).toBe(200), { timeout: 5_000 });
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("cm2") });
    await vi.waitFor(() => expect(leader.reconciled).toContain(`${ns.name}/cm2`), { timeout: 5_000 });
    expect(standby.reconciled).toEqual([]);

    const stoppedAt = performance.now();
    await leader.manager.stop();
    await vi.waitFor(() => expect(standby.manager.isLeader()).toBe(true), { timeout: 5_000, interval: 20 });
    expect(performance.now() - stoppedAt).toBeLessThan(1_500); // released, not expired
    // A new leader reconciles everything it has cached.
    await vi.waitFor(() => expect(standby.reconciled.sort()).toEqual([`${ns.name}/cm`, `${ns.name}/cm2`]), {
      timeout: 5_000,
    });
  });

  it("stops reconciling and exits non-zero when the Lease is lost", async () => {
    const ns = await createTestNamespace("manager-lost");
    onTestFinished(() => ns.delete());
    const exit = vi.fn();
    const { manager, reconciled } = operator(ns.name, "victim", { exit });
    await manager.start();
    await vi.waitFor(() => expect(manager.isLeader()).toBe(true), { timeout: 10_000 });
    await kubectl([
      "patch",
      "lease",
      "operator",
      "-n",
      ns.name,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { holderIdentity: "intruder", leaseDurationSeconds: 60 } }),
    ]);
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(1), { timeout: 5_000, interval: 20 });
    expect(manager.isLeader()).toBe(false);
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("after") });
    await new Promise((r) => setTimeout(r, 500));
    expect(reconciled).not.toContain(`${ns.name}/after`);
  });

  it("on a lost Lease aborts the in-flight reconcile and exits at once, without draining", async () => {
    const ns = await createTestNamespace("manager-lost-busy");
    onTestFinished(() => ns.delete());
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("slow") });
    let abortedAt: number | undefined;
    let exitedAt: number | undefined;
    const exit = vi.fn(() => {
      exitedAt = performance.now();
    });
    const { manager, reconciled } = operator(ns.name, "busy", {
      exit,
      gracefulShutdownMs: 30_000,
      // A reconcile that notices the abort but does not return for a long time (a slow API call).
      reconcile: (_key, signal) =>
        new Promise<void>((resolve) => {
          signal.addEventListener("abort", () => {
            abortedAt = performance.now();
          });
          setTimeout(resolve, 10_000).unref();
        }),
    });
    await manager.start();
    await vi.waitFor(() => expect(reconciled).toContain(`${ns.name}/slow`), { timeout: 10_000 });
    await kubectl([
      "patch",
      "lease",
      "operator",
      "-n",
      ns.name,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { holderIdentity: "intruder", leaseDurationSeconds: 60 } }),
    ]);
    // Lost within the renew deadline (1.5 s); the exit follows at once, not after the reconcile.
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(1), { timeout: 5_000, interval: 20 });
    expect(abortedAt).toBeDefined();
    expect(abortedAt).toBeLessThanOrEqual(exitedAt ?? 0);
  });

  it("on SIGTERM drains the in-flight reconcile, releases the Lease and exits 0", async () => {
    const ns = await createTestNamespace("manager-sigterm");
    onTestFinished(() => ns.delete());
    await kubectl(["create", "-n", ns.name, "-f", "-"], { input: configMap("slow") });
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL("testdata/manager-process.ts", import.meta.url))],
      {
        env: {
          ...process.env,
          KUBECONFIG: inject("kubeconfig"),
          NAMESPACE: ns.name,
          IDENTITY: "sigterm-test",
          RECONCILE_MS: "1500",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    onTestFinished(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const lines: Array<{ msg?: string; key?: string }> = [];
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      for (const line of chunk.split("\n").filter(Boolean)) lines.push(JSON.parse(line));
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));

    await vi.waitFor(() => expect(lines.map((l) => l.msg)).toContain("reconcile started"), {
      timeout: 20_000,
    });
    expect(await leaseHolder(ns.name, "manager-process")).toBe("sigterm-test");
    child.kill("SIGTERM");
    const code = await exited;
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const messages = lines.map((l) => l.msg);
    expect(messages.indexOf("reconcile finished")).toBeGreaterThan(messages.indexOf("shutting down"));
    expect(messages).toContain("released the leader lease");
    expect(await leaseHolder(ns.name, "manager-process")).toBe("");
  });
});
