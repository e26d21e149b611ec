// WebhookReplay (issue 15, item 2) on a real API server with the operator and dispatcher as
// processes and a real receiver: a replay of a time range requeues exactly the matching
// deliveries once — also those never mirrored as WebhookEvents — and applying it again does
// nothing; a new replay (another name) runs again; one with targetWebhook sends them to another webhook,
// once.
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { applyYaml, kubectl } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { ADMIN_TOKEN, type E2eWorld, setupWorld } from "./harness.ts";
import { eventually, getJson, integrationYaml, listEvents, routingLive, webhookYaml } from "./k8s.ts";

let world: E2eWorld;
let receiver: Receiver;

beforeAll(async () => {
  world = await setupWorld("replay", ["shop"]);
  receiver = await startReceiver();
  await world.startOperator("op-replay");
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

interface ReplayObject {
  metadata: { generation: number };
  status?: {
    observedGeneration?: number;
    matched?: number;
    requeued?: number;
    skipped?: number;
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
  };
}

function replayYaml(ns: string, name: string, spec: Record<string, unknown>): string {
  return stringify({
    apiVersion: "webhooks.dataforce.io/v1alpha1",
    kind: "WebhookReplay",
    metadata: { name, namespace: ns },
    spec,
  });
}

async function phaseOf(ns: string, eventId: string): Promise<string | undefined> {
  const response = await fetch(`${world.dispatcher.url}/v1/deliveries?namespace=${ns}&limit=100`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const page = (await response.json()) as { items: Array<{ eventId: string; phase: string }> };
  return page.items.find((item) => item.eventId === eventId)?.phase;
}

describe("WebhookReplay", () => {
  it("requeues exactly the FAILED deliveries of its time range once, from the Redis log; re-applying does nothing", async () => {
    const ns = world.namespaces.shop!;
    // nothing mirrored: the replay must work from the dispatcher's log alone
    await applyYaml(
      `${integrationYaml(ns, { maxAttempts: 1, mirror: "None" })}---\n${webhookYaml(
        ns,
        "crm",
        "job.created",
        receiver.url("/crm"),
      )}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.some((w) => w.name === "crm") ?? false);
    let down = true;
    receiver.on("/crm", () =>
      down ? { kind: "respond", status: 503, body: "down" } : { kind: "respond", status: 200 },
    );

    await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "before", data: { n: 0 } });
    await eventually(async () => expect(await phaseOf(ns, "before")).toBe("FAILED"));
    await sleep(50);
    const from = new Date().toISOString();
    for (const id of ["r-1", "r-2", "r-3"]) {
      await world.dispatcher.publish({ type: "job.created", namespace: ns, id, data: { n: id } });
    }
    for (const id of ["r-1", "r-2", "r-3"]) {
      await eventually(async () => expect(await phaseOf(ns, id)).toBe("FAILED"));
    }
    expect(await listEvents(ns)).toEqual([]); // mirror: None
    down = false;
    const failedCalls = receiver.requests("/crm").length; // 4

    await applyYaml(replayYaml(ns, "outage", { from, phases: ["FAILED"], maxPerSecond: 2 }));
    const wait = await kubectl([
      "wait",
      "--for=condition=Ready",
      "webhookreplay/outage",
      "-n",
      ns,
      "--timeout=30s",
    ]);
    expect(wait.code).toBe(0);
    const replay = await getJson<ReplayObject>(["get", "webhookreplay", "outage", "-n", ns]);
    expect(replay.status).toMatchObject({ observedGeneration: 1, matched: 3, requeued: 3, skipped: 0 });
    expect(replay.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "True",
      reason: "Complete",
    });
    await receiver.waitForRequests(failedCalls + 3, "/crm");
    for (const id of ["r-1", "r-2", "r-3"]) {
      await eventually(async () => expect(await phaseOf(ns, id)).toBe("SENT"));
    }
    expect(await phaseOf(ns, "before")).toBe("FAILED");
    const replayed = receiver
      .requests("/crm")
      .slice(failedCalls)
      .map((r) => JSON.parse(r.body).id)
      .sort();
    expect(replayed).toEqual(["r-1", "r-2", "r-3"]);
    const table = (await kubectl(["get", "whr", "outage", "-n", ns])).stdout;
    expect(table).toMatch(/\s3\s+3\s+0\s+True\s+Complete\s/);

    // applied again, unchanged: nothing happens
    await applyYaml(replayYaml(ns, "outage", { from, phases: ["FAILED"], maxPerSecond: 2 }));
    await sleep(2_000);
    expect(receiver.requests("/crm")).toHaveLength(failedCalls + 3);
    expect((await getJson<ReplayObject>(["get", "whr", "outage", "-n", ns])).status).toMatchObject({
      matched: 3,
      requeued: 3,
    });

    // SENT ones are replayed only when asked for, by a new replay
    await applyYaml(replayYaml(ns, "resend", { from, phases: ["SENT"] }));
    await kubectl(["wait", "--for=condition=Ready", "webhookreplay/resend", "-n", ns, "--timeout=30s"]);
    await receiver.waitForRequests(failedCalls + 6, "/crm");
    expect((await getJson<ReplayObject>(["get", "whr", "resend", "-n", ns])).status).toMatchObject({
      matched: 3,
      requeued: 3,
    });

    // to a replacement endpoint: the crm webhook's deliveries sent to crm-v2 as new deliveries
    const crmCalls = receiver.requests("/crm").length;
    await applyYaml(webhookYaml(ns, "crm-v2", "job.created", receiver.url("/crm-v2")));
    await routingLive(world, ns, (r) => r?.webhooks.some((w) => w.name === "crm-v2") ?? false);
    const toV2 = { from, phases: ["SENT"], webhook: "crm", targetWebhook: "crm-v2" };
    await applyYaml(replayYaml(ns, "to-v2", toV2));
    await kubectl(["wait", "--for=condition=Ready", "webhookreplay/to-v2", "-n", ns, "--timeout=30s"]);
    expect((await getJson<ReplayObject>(["get", "whr", "to-v2", "-n", ns])).status).toMatchObject({
      matched: 3,
      requeued: 3,
      skipped: 0,
    });
    const copies = await receiver.waitForRequests(3, "/crm-v2");
    expect(copies.map((r) => JSON.parse(r.body) as { id: string; webhook: string })).toEqual(
      expect.arrayContaining(
        ["r-1", "r-2", "r-3"].map((id) => expect.objectContaining({ id, webhook: "crm-v2" })),
      ),
    );
    // applied again: no second copy; the old endpoint got nothing more
    await applyYaml(replayYaml(ns, "to-v2", toV2));
    await sleep(2_000);
    expect(receiver.requests("/crm-v2")).toHaveLength(3);
    expect(receiver.requests("/crm")).toHaveLength(crmCalls);
  });
});
