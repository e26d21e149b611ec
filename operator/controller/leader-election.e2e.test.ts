import { describe, expect, it, onTestFinished, vi } from "vitest";
import { createTestNamespace, kubeClient, kubectl } from "../../test/env/kubectl.ts";
import { LeaderElector } from "./leader-election.ts";

// Short timings so failover takes seconds: lease 2 s, renew deadline 1.5 s, retry 0.3 s.
const timings = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 300 };

interface Candidate {
  elector: LeaderElector;
  leading: boolean;
  startedAt: number | undefined;
  stopped: Array<"lost" | "stopped">;
}

function candidate(namespace: string, identity: string, releaseOnStop = true): Candidate {
  const state: Candidate = {
    elector: undefined as unknown as LeaderElector,
    leading: false,
    startedAt: undefined,
    stopped: [],
  };
  state.elector = new LeaderElector(kubeClient(), {
    namespace,
    name: "operator-leader",
    identity,
    releaseOnStop,
    ...timings,
    onStartedLeading: () => {
      state.leading = true;
      state.startedAt = performance.now();
    },
    onStoppedLeading: (reason) => {
      state.leading = false;
      state.stopped.push(reason);
    },
  });
  void state.elector.run();
  onTestFinished(() => state.elector.stop());
  return state;
}

async function lease(namespace: string) {
  const { stdout } = await kubectl(["get", "lease", "operator-leader", "-n", namespace, "-o", "json"]);
  return JSON.parse(stdout) as {
    spec: {
      holderIdentity?: string;
      leaseDurationSeconds?: number;
      leaseTransitions?: number;
      acquireTime?: string;
      renewTime?: string;
    };
  };
}

describe("LeaderElector on a real API server", () => {
  it("elects exactly one of two candidates and records the Lease as client-go does", async () => {
    const ns = await createTestNamespace("leader-one");
    onTestFinished(() => ns.delete());
    const a = candidate(ns.name, "a");
    const b = candidate(ns.name, "b");
    await vi.waitFor(() => expect([a.leading, b.leading].filter(Boolean)).toHaveLength(1), {
      timeout: 5_000,
    });
    // Several renewals later, still exactly one.
    await new Promise((r) => setTimeout(r, 1_500));
    expect([a.leading, b.leading].filter(Boolean)).toHaveLength(1);
    const leader = a.leading ? a : b;
    const follower = a.leading ? b : a;
    expect(leader.elector.isLeader()).toBe(true);
    expect(follower.elector.leader()).toBe(leader.elector.identity);

    const { spec } = await lease(ns.name);
    expect(spec.holderIdentity).toBe(leader.elector.identity);
    expect(spec.leaseDurationSeconds).toBe(2);
    expect(spec.leaseTransitions).toBe(0);
    expect(spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(spec.acquireTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it("hands over within the lease duration when the leader stops renewing, and at once when it releases", async () => {
    const ns = await createTestNamespace("leader-failover");
    onTestFinished(() => ns.delete());
    // `first` vanishes without releasing (like a killed process).
    const first = candidate(ns.name, "first", false);
    await vi.waitFor(() => expect(first.leading).toBe(true), { timeout: 5_000 });
    const second = candidate(ns.name, "second");
    await new Promise((r) => setTimeout(r, 700));
    expect(second.leading).toBe(false);

    const crashedAt = performance.now();
    await first.elector.stop();
    expect(first.stopped).toEqual(["stopped"]);
    expect((await lease(ns.name)).spec.holderIdentity).toBe("first");
    await vi.waitFor(() => expect(second.leading).toBe(true), { timeout: 6_000, interval: 50 });
    const expiryTakeover = second.startedAt! - crashedAt;
    expect(expiryTakeover).toBeGreaterThan(1_000);
    expect(expiryTakeover).toBeLessThan(2_000 + 2 * 300 * 2.2 + 500);
    expect((await lease(ns.name)).spec).toMatchObject({ holderIdentity: "second", leaseTransitions: 1 });

    // A graceful stop clears the holder: the standby takes over at its next poll.
    const third = candidate(ns.name, "third");
    await new Promise((r) => setTimeout(r, 700));
    expect(third.leading).toBe(false);
    const releasedAt = performance.now();
    await second.elector.stop();
    await vi.waitFor(() => expect(third.leading).toBe(true), { timeout: 6_000, interval: 20 });
    const releaseTakeover = third.startedAt! - releasedAt;
    expect(releaseTakeover).toBeLessThan(300 * (1 + 1.2) + 400);
    expect((await lease(ns.name)).spec).toMatchObject({ holderIdentity: "third", leaseTransitions: 2 });
  });

  it("stops leading within the renew deadline when another holder takes the Lease", async () => {
    const ns = await createTestNamespace("leader-lost");
    onTestFinished(() => ns.delete());
    const only = candidate(ns.name, "only");
    await vi.waitFor(() => expect(only.leading).toBe(true), { timeout: 5_000 });
    // An intruder rewrites the Lease (as a candidate with a longer lease would after an expiry).
    await kubectl([
      "patch",
      "lease",
      "operator-leader",
      "-n",
      ns.name,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { holderIdentity: "intruder", leaseDurationSeconds: 30 } }),
    ]);
    const stolenAt = performance.now();
    await vi.waitFor(() => expect(only.stopped).toEqual(["lost"]), { timeout: 5_000, interval: 20 });
    expect(performance.now() - stolenAt).toBeLessThan(300 + 1_500 + 500);
    expect(only.elector.isLeader()).toBe(false);
  });
});
