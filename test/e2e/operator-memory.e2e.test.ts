// The operator's memory with many large WebhookEvents in its namespaces (issue 10, item 5): the
// caches hold them without spec.payload, so a few thousand 60 KiB events cost little. The
// operator runs with the V8 heap limits Node takes in a 256 MiB container (the chart gives 384);
// a cache that kept the payloads would need more heap than that (2,000 × 60 KiB = 117 MiB of
// payload against 128 MiB of old space) and the process would die or blow the bound. A memory
// bound, not a timing. `npm run bench:operator-memory` measures the same with 20,000 events.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { adminKubeconfig, applyYaml, kubectl } from "../env/kubectl.ts";
import { adminClient, createLargeWebhookEvents } from "../support/large-webhook-events.ts";
import { heapFlags, RssSampler } from "../support/process-memory.ts";
import { type E2eWorld, setupWorld } from "./harness.ts";
import { eventually, integrationYaml, webhookYaml } from "./k8s.ts";

const EVENTS = 2_000;
const PAYLOAD_BYTES = 60 * 1024;
const WEBHOOK = "crm";
/**
 * The container whose heap limits the operator gets, MiB: stricter than the chart's 384 MiB
 * (values.yaml operator.resources.limits.memory), so a cache keeping payloads cannot fit.
 */
const CONTAINER_MIB = 256;
/**
 * The stated bound on the operator's anonymous RSS (what a container's memory limit is charged
 * with; the node binary's file-backed pages are reclaimable) while it lists, caches and re-lists
 * the events. Measured: see the README's "Operator memory".
 */
const ANON_BOUND_MIB = 200;

let world: E2eWorld;

beforeAll(async () => {
  world = await setupWorld("opmem", ["a", "b"]);
});
beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));
afterAll(async () => {
  await world?.teardown();
});

describe("the operator's memory", () => {
  it(`holds ${EVENTS} WebhookEvents of 60 KiB in a 256 MiB container's heap, payloads not cached`, {
    timeout: 300_000,
  }, async () => {
    const namespaces = [world.namespaces.a!, world.namespaces.b!];
    const uids = new Map<string, string>();
    for (const ns of namespaces) {
      // retention that deletes nothing: the events must all stay cached
      await applyYaml(integrationYaml(ns, { maxEvents: EVENTS, retention: "24h" }));
      await applyYaml(webhookYaml(ns, WEBHOOK, "job.created", "http://127.0.0.1:9/hook"));
      uids.set(
        ns,
        (await kubectl(["get", "webhook", WEBHOOK, "-n", ns, "-o", "jsonpath={.metadata.uid}"])).stdout,
      );
    }
    const api = adminClient(adminKubeconfig(), { maxSockets: 16 });
    try {
      await createLargeWebhookEvents(api, {
        namespaces,
        webhook: WEBHOOK,
        uids,
        count: EVENTS,
        payloadBytes: PAYLOAD_BYTES,
        concurrency: 16,
      });
    } finally {
      api.agent.destroy();
    }

    const operator = await world.startOperator("op-mem", {
      NODE_OPTIONS: heapFlags(CONTAINER_MIB).join(" "),
      // two full re-lists inside the test: the peak of a re-list counts too
      OPERATOR_RESYNC_PERIOD_MS: "4000",
      OPERATOR_LOG_LEVEL: "info",
    });
    const sampler = new RssSampler(operator.proc.child.pid!);
    const exited = () => {
      const { exitCode, signalCode } = operator.proc.child;
      return exitCode === null && signalCode === null
        ? undefined
        : `the operator exited (${signalCode ?? exitCode})`;
    };
    try {
      await eventually(async () => {
        expect(exited()).toBeUndefined();
        expect((await fetch(`http://127.0.0.1:${operator.port}/readyz`)).ok).toBe(true);
      }, 120_000);
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      expect(exited()).toBeUndefined();
      const peakAnon = sampler.anonMax();
      console.log(
        `operator with ${EVENTS} × 60 KiB WebhookEvents, heap limits of a ${CONTAINER_MIB} MiB container: ` +
          `peak RssAnon ${peakAnon.toFixed(0)} MiB, VmHWM ${sampler.hwm().toFixed(0)} MiB`,
      );
      expect(peakAnon).toBeGreaterThan(0);
      expect(peakAnon).toBeLessThan(ANON_BOUND_MIB);
    } finally {
      sampler.stop();
      await operator.stop();
    }
  });
});
