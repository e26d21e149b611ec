// A receiver that fails: 3 attempts, FAILED; retry by annotation (one, a token already
// honoured coming back, an event that is not FAILED, and many at once by label).
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { WebhookEvent } from "../../operator/api/v1alpha1/index.ts";
import { applyYaml, kubectl } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type E2eWorld, setupWorld } from "./harness.ts";
import {
  eventually,
  getEvent,
  integrationYaml,
  kubeEvents,
  listEvents,
  ready,
  routingLive,
  webhookYaml,
} from "./k8s.ts";

let world: E2eWorld;
let receiver: Receiver;

beforeAll(async () => {
  world = await setupWorld("retry", ["retry", "queued", "bulk"]);
  receiver = await startReceiver();
  await world.startOperator("op-retry");
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

const annotate = (ns: string, target: string[], token: string) =>
  kubectl([
    "annotate",
    "webhookevent",
    ...target,
    "-n",
    ns,
    `webhooks.dataforce.io/retry=${token}`,
    "--overwrite",
  ]);

async function setUp(ns: string, name: string, path: string, event = "job.updated"): Promise<void> {
  // these tests count attempts across retries to a dead receiver: the circuit breaker (on by
  // default) would hold the later ones back, so it is off here
  const integration = integrationYaml(ns, { circuitBreaker: { consecutiveFailures: 0 } });
  await applyYaml(`${integration}---\n${webhookYaml(ns, name, event, receiver.url(path))}`);
  await routingLive(world, ns, (r) => r?.webhooks.some((w) => w.name === name) ?? false);
}

async function waitForPhase(
  ns: string,
  name: string,
  phase: string,
  attempts?: number,
): Promise<WebhookEvent> {
  return eventually(async () => {
    const event = await getEvent(ns, name);
    expect(event.status?.phase).toBe(phase);
    expect(event.metadata.labels?.["webhooks.dataforce.io/phase"]).toBe(phase);
    if (attempts !== undefined) expect(event.status?.attempts).toBe(attempts);
    return event;
  });
}

describe("a receiver that fails", () => {
  it("3 attempts then FAILED; each fresh token grants 3 more, an honoured token coming back grants none; fixed: QUEUED, then SENT", async () => {
    const ns = world.namespaces.retry!;
    receiver.on("/retry/jobs", { kind: "respond", status: 500, body: "database down" });
    await setUp(ns, "jobs", "/retry/jobs");
    await world.dispatcher.publish({
      type: "job.updated",
      namespace: ns,
      id: "job-7-v2",
      data: { jobId: "job_7" },
    });

    await receiver.waitForRequests(3, "/retry/jobs");
    const [{ metadata }] = await eventually(async () => {
      const events = await listEvents(ns);
      expect(events).toHaveLength(1);
      return events as [WebhookEvent];
    });
    const name = metadata.name;
    const failed = await waitForPhase(ns, name, "FAILED", 3);
    expect(failed.status?.attemptHistory?.map((a) => a.statusCode)).toEqual([500, 500, 500]);
    expect(ready(failed)).toMatchObject({ status: "False", reason: "Failed" });
    // GitOps tools read it as failed (kstatus Failed, Argo CD Degraded) until retried.
    expect(failed.status?.conditions?.find((c) => c.type === "Stalled")).toMatchObject({
      status: "True",
      reason: "Failed",
    });
    await eventually(async () => {
      expect((await kubeEvents(ns)).map((e) => e.reason)).toContain("DeliveryFailed");
      // Events carry the object's uid, so `kubectl describe` lists them.
      const described = (await kubectl(["describe", "webhookevent", name, "-n", ns])).stdout;
      expect(described).toMatch(/Warning\s+DeliveryFailed/);
    });
    await sleep(500);
    expect(receiver.requests("/retry/jobs")).toHaveLength(3);

    // Still failing: each fresh token grants a new cycle of 3 attempts, ending FAILED again.
    await annotate(ns, [name], "try-1");
    expect((await waitForPhase(ns, name, "FAILED", 6)).status?.lastRetryToken).toBe("try-1");
    await annotate(ns, [name], "try-2");
    expect((await waitForPhase(ns, name, "FAILED", 9)).status?.lastRetryToken).toBe("try-2");
    expect(receiver.requests("/retry/jobs")).toHaveLength(9);

    // The first token back on a FAILED delivery (the annotation does change, so the
    // operator sees it): already honoured, so no new attempt and no POST.
    await annotate(ns, [name], "try-1");
    await eventually(async () => {
      const notes = (await kubeEvents(ns)).map((e) => e.message);
      expect(notes).toContain("retry try-1 was already honoured for this delivery");
    });
    await sleep(1_000);
    expect(receiver.requests("/retry/jobs")).toHaveLength(9);
    expect((await getEvent(ns, name)).status).toMatchObject({ phase: "FAILED", attempts: 9 });

    // Fixed, but slow enough that QUEUED is visible before SENT; a fresh token delivers.
    receiver.on("/retry/jobs", { kind: "respond", status: 200, delayMs: 1_500 });
    await annotate(ns, [name], "fix-1");
    const queued = await waitForPhase(ns, name, "QUEUED");
    expect(queued.status?.lastRetryToken).toBe("fix-1");
    expect(queued.status?.conditions?.map((c) => `${c.type}=${c.status}`).sort()).toEqual([
      "Ready=False",
      "Reconciling=True",
    ]);
    const sent = await waitForPhase(ns, name, "SENT", 10);
    expect(sent.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual(["Ready=True"]);
    expect(sent.status?.attemptHistory?.map((a) => a.statusCode).slice(-2)).toEqual([500, 200]);
    expect(sent.status?.lastRetryToken).toBe("fix-1");
    expect(receiver.requests("/retry/jobs")).toHaveLength(10);
    // Every attempt carried the same webhook-id: the receiver can de-duplicate.
    expect(new Set(receiver.requests("/retry/jobs").map((r) => r.headers["webhook-id"]))).toEqual(
      new Set([name]),
    );

    // A new token on a SENT delivery is ignored, with an Event saying why.
    await annotate(ns, [name], "fix-2");
    await eventually(async () => {
      const ignored = (await kubeEvents(ns)).find((e) => e.reason === "RetryIgnored");
      expect(ignored?.message).toMatch(/already delivered \(SENT\)/);
      expect(ignored?.involvedObject).toMatchObject({ kind: "WebhookEvent", name });
    });
    await sleep(500);
    expect(receiver.requests("/retry/jobs")).toHaveLength(10);
    expect((await getEvent(ns, name)).status).toMatchObject({
      phase: "SENT",
      attempts: 10,
      lastRetryToken: "fix-2",
    });
    const reasons = (await kubeEvents(ns)).map((e) => e.reason);
    expect(reasons).toContain("RetryAccepted");
  });

  it("a retry of a QUEUED delivery is ignored with an Event", async () => {
    const ns = world.namespaces.queued!;
    receiver.on("/queued/hang", { kind: "respond", status: 503, delayMs: 1_000 });
    await setUp(ns, "slow", "/queued/hang", "job.created");
    await world.dispatcher.publish({
      type: "job.created",
      namespace: ns,
      id: "job-9",
      data: { jobId: "job_9" },
    });
    const [event] = await eventually(async () => {
      const events = await listEvents(ns);
      expect(events[0]?.status?.phase).toBe("QUEUED");
      return events;
    });
    await annotate(ns, [event!.metadata.name], "too-early");
    await eventually(async () => {
      const ignored = (await kubeEvents(ns)).find((e) => e.reason === "RetryIgnored");
      expect(ignored?.message).toMatch(/still QUEUED/);
    });
    // It runs its own course: 3 attempts, FAILED; the early token did not add a round.
    await waitForPhase(ns, event!.metadata.name, "FAILED", 3);
    await sleep(500);
    expect(receiver.requests("/queued/hang")).toHaveLength(3);
  });

  it("bulk retry: kubectl annotate -l webhooks.dataforce.io/phase=FAILED retries every FAILED event", async () => {
    const ns = world.namespaces.bulk!;
    let healthy = false;
    receiver.on("/bulk/pay", () => ({ kind: "respond", status: healthy ? 204 : 502 }));
    await setUp(ns, "pay", "/bulk/pay", "payment.received");
    for (let i = 1; i <= 4; i++) {
      await world.dispatcher.publish({
        type: "payment.received",
        namespace: ns,
        id: `pay-${i}`,
        data: { paymentId: `p${i}` },
      });
    }
    await eventually(async () => {
      expect(await listEvents(ns, "webhooks.dataforce.io/phase=FAILED")).toHaveLength(4);
    });
    expect(receiver.requests("/bulk/pay")).toHaveLength(12);

    healthy = true;
    await kubectl([
      "annotate",
      "webhookevents",
      "-n",
      ns,
      "-l",
      "webhooks.dataforce.io/phase=FAILED",
      "webhooks.dataforce.io/retry=bulk-1",
      "--overwrite",
    ]);
    await eventually(async () => {
      const sent = await listEvents(ns, "webhooks.dataforce.io/phase=SENT");
      expect(sent).toHaveLength(4);
      for (const event of sent) expect(event.status).toMatchObject({ attempts: 4, lastRetryToken: "bulk-1" });
    });
    expect(await listEvents(ns, "webhooks.dataforce.io/phase=FAILED")).toHaveLength(0);
    expect(receiver.requests("/bulk/pay")).toHaveLength(16);
  });
});
