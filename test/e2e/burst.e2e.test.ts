// A burst of 500 events with mirroring All: 500 WebhookEvents, written at no more than
// the configured rate (audited from the API server's side with a watch, and from the
// operator's own counter), while deliveries go out at full speed.
import { setTimeout as sleep } from "node:timers/promises";
import { Watch } from "@kubernetes/client-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { WebhookEvent } from "../../operator/api/v1alpha1/index.ts";
import { applyYaml, kubeClient } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type E2eWorld, metricValue, type OperatorProcess, setupWorld } from "./harness.ts";
import { eventually, integrationYaml, listEvents, routingLive, webhookYaml } from "./k8s.ts";

const EVENTS = 500;
const QPS = 60;
const BURST = 30;

let world: E2eWorld;
let receiver: Receiver;
let operator: OperatorProcess;

beforeAll(async () => {
  world = await setupWorld("burst", ["burst"]);
  receiver = await startReceiver();
  operator = await world.startOperator("op-burst", {
    OPERATOR_API_QPS: String(QPS),
    OPERATOR_API_BURST: String(BURST),
    // Enough writers that the rate limit, not the API server's latency, sets the pace.
    OPERATOR_MIRROR_WORKERS: "16",
    OPERATOR_LOG_LEVEL: "info",
  });
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

/** The most writes seen in any window of `windowMs` (times in ms, sorted). */
function maxInWindow(times: readonly number[], windowMs: number): number {
  let max = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while (times[end]! - times[start]! > windowMs) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}

describe("a burst of 500 events", () => {
  it("converges to 500 WebhookEvents while the API write rate stays within the configured limit", async () => {
    const ns = world.namespaces.burst!;
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "firehose", "job.created", receiver.url("/burst"))}`,
    );
    await routingLive(world, ns, (r) => r?.webhooks.length === 1);

    // Audit from the API server's side: every create or update of a WebhookEvent in the
    // namespace is one watch event (the mirror's writes always change something).
    // The watch also tells when every object shows SENT, without polling lists of 500 objects.
    const writes: number[] = [];
    const phases = new Map<string, string | undefined>();
    const watch = await new Watch(kubeClient()).watch(
      `/apis/webhooks.dataforce.io/v1alpha1/namespaces/${ns}/webhookevents`,
      { allowWatchBookmarks: false },
      (type, object: WebhookEvent) => {
        if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") writes.push(performance.now());
        if (type === "ADDED" || type === "MODIFIED") {
          const labelled = object.metadata.labels?.["webhooks.dataforce.io/phase"];
          phases.set(object.metadata.name, labelled === object.status?.phase ? labelled : undefined);
        }
      },
      () => {},
    );
    const eventWrites = (text: string) =>
      metricValue(text, "dataforce_operator_api_writes_total", { resource: "webhookevents" }) +
      metricValue(text, "dataforce_operator_api_writes_total", { resource: "webhookevents/status" });
    const writesBefore = eventWrites(await operator.metrics());

    // The operator's side: its write counter, sampled every ~50 ms.
    const samples: Array<{ at: number; writes: number }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const at = performance.now();
        samples.push({ at, writes: eventWrites(await operator.metrics()) });
        await sleep(50);
      }
    })();

    const started = performance.now();
    await world.dispatcher.publishBatch(
      Array.from({ length: EVENTS }, (_, i) => ({
        type: "job.created",
        namespace: ns,
        id: `burst-${i}`,
        data: { jobId: `job_${i}` },
      })),
    );
    await receiver.waitForRequests(EVENTS, "/burst", 60_000);
    const deliveredMs = performance.now() - started;

    let peakLag = 0;
    await eventually(
      async () => {
        peakLag = Math.max(
          peakLag,
          metricValue(await operator.metrics(), "dataforce_operator_mirror_lag_seconds"),
        );
        const events = await listEvents(ns, "webhooks.dataforce.io/phase=SENT");
        expect(events).toHaveLength(EVENTS);
      },
      90_000,
      500,
    );
    const mirroredMs = performance.now() - started;
    watch.abort();
    sampling = false;
    await sampler;

    const all = await listEvents(ns, "webhooks.dataforce.io/phase=SENT");
    expect(all).toHaveLength(EVENTS);
    expect(all.every((e) => e.status?.phase === "SENT" && e.status.attempts === 1)).toBe(true);

    const metrics = await operator.metrics();
    const counted = eventWrites(metrics) - writesBefore;
    const issued = (windowMs: number) => {
      let max = 0;
      for (let i = 0, j = 0; j < samples.length; j++) {
        while (samples[j]!.at - samples[i]!.at > windowMs) i++;
        max = Math.max(max, samples[j]!.writes - samples[i]!.writes);
      }
      return max;
    };
    const peak1s = maxInWindow(writes, 1_000);
    const peak2s = maxInWindow(writes, 2_000);
    const peak5s = maxInWindow(writes, 5_000);
    const seconds = (writes.at(-1)! - writes[0]!) / 1000;
    console.log(
      `burst: ${EVENTS} delivered in ${(deliveredMs / 1000).toFixed(1)} s, mirrored in ${(mirroredMs / 1000).toFixed(1)} s; ` +
        `${writes.length} WebhookEvent writes seen by the watch (${counted} counted by the operator) over ${seconds.toFixed(1)} s ` +
        `= ${(writes.length / seconds).toFixed(0)}/s; peak seen ${peak1s} in 1 s, ${peak2s} in 2 s, ${peak5s} in 5 s; ` +
        `peak issued ${issued(1_000)} in 1 s, ${issued(2_000)} in 2 s, ${issued(5_000)} in 5 s; limit ${QPS}/s burst ${BURST}; ` +
        `peak mirror lag ${peakLag.toFixed(1)} s`,
    );

    // Coalesced: about one create + one status write per delivery, however many states it passed.
    expect(writes.length).toBeGreaterThanOrEqual(2 * EVENTS);
    expect(writes.length).toBeLessThanOrEqual(2 * EVENTS + 2 * BURST);
    // The watch saw the writes the operator counted (a request that changed nothing, e.g. a
    // create that met an object the cache did not show yet, is counted but makes no watch event;
    // how many depends on how far the cache lags: 13 of ~1,000 on a machine also running a node).
    expect(counted).toBeGreaterThanOrEqual(writes.length);
    expect(counted - writes.length).toBeLessThanOrEqual(writes.length * 0.02);
    // A token bucket allows at most burst + qps·T writes in any T seconds. As issued (the
    // operator's counter; a sample's value is read a little after its time, hence qps·0.1 s):
    for (const windowMs of [1_000, 2_000, 5_000]) {
      expect(issued(windowMs)).toBeLessThanOrEqual(BURST + (QPS * (windowMs + 100)) / 1000);
    }
    // As the API server applied them: the watch adds the server's and its own jitter (a few
    // hundred ms on a busy machine), which only short windows feel, so 5 and 10 s with 10% slack.
    const peak10s = maxInWindow(writes, 10_000);
    expect(peak5s).toBeLessThanOrEqual((BURST + QPS * 5) * 1.1);
    expect(peak10s).toBeLessThanOrEqual((BURST + QPS * 10) * 1.1);
    expect(writes.length / seconds).toBeLessThanOrEqual(QPS * 1.1 + BURST / seconds);
    // The mirror never slowed delivery: everything was delivered long before it was mirrored.
    expect(deliveredMs).toBeLessThan(mirroredMs / 2);
    expect(metricValue(await operator.metrics(), "dataforce_operator_mirror_lag_seconds")).toBe(0);
  });
});
