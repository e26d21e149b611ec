// Operator restarts and leader failover lose no status update.
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { applyYaml, kubectl } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type E2eWorld, INGEST_TOKEN, metricValue, type OperatorProcess, setupWorld } from "./harness.ts";
import {
  eventually,
  getWebhook,
  integrationYaml,
  listEvents,
  ready,
  routingLive,
  webhookYaml,
} from "./k8s.ts";

let world: E2eWorld;
let receiver: Receiver;

beforeAll(async () => {
  world = await setupWorld("resilience", ["restart", "failover", "dataloss"]);
  receiver = await startReceiver();
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

async function publishMany(ns: string, prefix: string, count: number): Promise<void> {
  await world.dispatcher.publishBatch(
    Array.from({ length: count }, (_, i) => ({
      type: "job.created",
      namespace: ns,
      id: `${prefix}-${i}`,
      data: { jobId: `${prefix}_${i}` },
    })),
  );
}

async function expectAllSent(ns: string, count: number, timeoutMs = 30_000): Promise<void> {
  await eventually(
    async () => {
      const events = await listEvents(ns);
      expect(
        events.filter(
          (e) => e.status?.phase === "SENT" && e.metadata.labels?.["webhooks.dataforce.io/phase"] === "SENT",
        ),
      ).toHaveLength(count);
    },
    timeoutMs,
    250,
  );
}

async function leaseHolder(): Promise<string> {
  const { stdout } = await kubectl([
    "get",
    "lease",
    "dataforce-webhooks-operator",
    "-n",
    world.operatorNamespace,
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  return stdout.trim();
}

describe("operator restarts", () => {
  it("a SIGKILLed operator loses nothing: entries it had read but not mirrored, and changes made while it was down, reach the API server after restart", async () => {
    const ns = world.namespaces.restart!;
    // A slow mirror (5 writes/s) so the kill lands in the middle of the backlog.
    const slow = { OPERATOR_API_QPS: "5", OPERATOR_API_BURST: "5" };
    let operator = await world.startOperator("restart-1", slow);
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "jobs", "job.created", receiver.url("/restart"))}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);

    await publishMany(ns, "before-kill", 30);
    await receiver.waitForRequests(30, "/restart");
    await eventually(async () => expect((await listEvents(ns)).length).toBeGreaterThanOrEqual(3));
    await operator.kill();
    const mirroredBeforeKill = (await listEvents(ns)).length;
    expect(mirroredBeforeKill).toBeLessThan(30);

    // While no operator runs: more deliveries, and a spec change.
    await publishMany(ns, "while-down", 10);
    await receiver.waitForRequests(40, "/restart");
    await applyYaml(webhookYaml(ns, "jobs", "job.created", receiver.url("/restart"), { paused: true }));

    operator = await world.startOperator("restart-2");
    await expectAllSent(ns, 40);
    await eventually(async () => {
      const webhook = await getWebhook(ns, "jobs");
      expect(ready(webhook)).toMatchObject({ status: "True", reason: "Paused", observedGeneration: 2 });
    });
    await routingLive(world, ns, (r) => r?.webhooks[0]?.paused === true);
    await operator.stop();
  });
});

describe("leader election", () => {
  let a: OperatorProcess;
  let b: OperatorProcess;

  it("two operators: exactly one reconciles; kill it and the other takes over within the lease duration, losing no status update", async () => {
    const ns = world.namespaces.failover!;
    a = await world.startOperator("leader-a");
    await eventually(async () => expect(await leaseHolder()).toBe("leader-a"));
    b = await world.startOperator("leader-b");

    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "jobs", "job.created", receiver.url("/failover"))}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    await publishMany(ns, "led-by-a", 5);
    await expectAllSent(ns, 5);

    // Only the leader reconciles and writes; the standby only keeps its caches warm.
    const reconciles = (text: string) => metricValue(text, "controller_runtime_reconcile_total");
    const writes = (text: string) => metricValue(text, "dataforce_operator_api_writes_total");
    const [metricsA, metricsB] = await Promise.all([a.metrics(), b.metrics()]);
    expect(reconciles(metricsA)).toBeGreaterThan(0);
    expect(writes(metricsA)).toBeGreaterThan(0);
    expect(reconciles(metricsB)).toBe(0);
    expect(writes(metricsB)).toBe(0);
    expect(metricValue(metricsB, "dataforce_operator_mirror_entries_total")).toBe(0);
    expect((await fetch(`http://127.0.0.1:${b.port}/readyz`)).status).toBe(200);

    // The leader dies without releasing the Lease; work piles up meanwhile.
    await a.kill();
    const killedAt = performance.now();
    await publishMany(ns, "after-kill", 5);
    await applyYaml(
      webhookYaml(ns, "jobs", "job.created", receiver.url("/failover"), { displayName: "Jobs feed v2" }),
    );

    await eventually(async () => expect(await leaseHolder()).toBe("leader-b"), 15_000, 100);
    const takeoverMs = performance.now() - killedAt;
    console.log(
      `failover: leader-b took over ${Math.round(takeoverMs)} ms after leader-a was killed (lease 3000 ms)`,
    );
    expect(takeoverMs).toBeLessThan(3_000 + 2 * 500 + 1_000); // lease duration + a retry period or two + kubectl

    await expectAllSent(ns, 10);
    await eventually(async () => {
      const webhook = await getWebhook(ns, "jobs");
      expect(webhook.status?.observedGeneration).toBe(2);
      expect(ready(webhook)).toMatchObject({ status: "True", reason: "Active" });
    });
    expect(reconciles(await b.metrics())).toBeGreaterThan(0);

    // A graceful stop releases the Lease at once.
    await b.stop();
    expect(await leaseHolder()).toBe("");
    await sleep(0);
  });
});

describe("Redis loses its data", () => {
  it("the operator notices the routing is gone and writes it again within seconds, and deliveries resume", async () => {
    const ns = world.namespaces.dataloss!;
    const operator = await world.startOperator("op-dataloss");
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "job.created", receiver.url("/dataloss/crm"))}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);
    // what a restart without persistence or a failover to an empty replica leaves: no routing at all
    const keys = keyspace(world.keyTag);
    await world.redis.del(keys.routing, keys.routingRevision, keys.routingEpoch);
    const lost = performance.now();
    await routingLive(world, ns, (r) => r?.webhooks.length === 1, 10_000);
    const repairedMs = performance.now() - lost;
    console.log(`data loss: the routing was written again ${Math.round(repairedMs)} ms after it vanished`);
    expect(repairedMs).toBeLessThan(8_000);
    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "after-loss", data: {} });
    await receiver.waitForRequests(1, "/dataloss/crm");
    await operator.stop();

    // With no operator to repair it, the dispatcher refuses events (503: producers retry) instead
    // of recording them as integration-missing, until the routing is back.
    await world.redis.del(keys.routing, keys.routingRevision, keys.routingEpoch);
    await eventually(async () => expect((await fetch(`${world.dispatcher.url}/readyz`)).status).toBe(503));
    const refused = await fetch(`${world.dispatcher.url}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "job.created", namespace: ns, id: "during-loss", data: {} }),
    });
    expect(refused.status).toBe(503);
    const repairer = await world.startOperator("op-dataloss-2");
    await routingLive(world, ns, (r) => r?.webhooks.length === 1, 20_000);
    await eventually(async () => expect((await fetch(`${world.dispatcher.url}/readyz`)).status).toBe(200));
    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "after-repair", data: {} });
    await receiver.waitForRequests(2, "/dataloss/crm");
    await repairer.stop();
  });
});
