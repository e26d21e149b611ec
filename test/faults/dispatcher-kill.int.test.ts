import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { type DispatcherProcess, startDispatcherProcess } from "../support/dispatcher-process.ts";
import { INGEST_TOKEN, TEST_SECRET_BOX, testRouting, uniqueKeyTag } from "../support/fixtures.ts";
import { faultRow, reportRow } from "./fault-table.ts";
import {
  account,
  drain,
  failedOf,
  type LoadReceiver,
  redisPhases,
  startLoad,
  startLoadReceiver,
} from "./load.ts";

// Two dispatcher processes share the load; one is SIGKILLed mid-load with attempts in flight.
// Producers whose requests it dropped retry on the other (same event id); the survivor claims
// the dead replica's unacknowledged work after DISPATCHER_CLAIM_IDLE_MS (1 s here).

const NAMESPACE = "kill";
const PATH = "/kill";

let redis: Redis;
let receiver: LoadReceiver;
let logDir: string;
const dispatchers: DispatcherProcess[] = [];

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  receiver = await startLoadReceiver();
  logDir = await mkdtemp(join(tmpdir(), "faults-kill-"));
});
afterAll(async () => {
  await Promise.all(dispatchers.map((dispatcher) => dispatcher.stop()));
  await receiver?.close();
  redis?.disconnect();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

it("dispatcher kill -9 mid-load: nothing lost; a copy twice only with the same webhook-id and body", async ({
  task,
}) => {
  const keyTag = uniqueKeyTag();
  const keys = keyspace(keyTag);
  // 50 ms answers keep ~10 attempts in flight on each replica when the kill lands
  receiver.fault(PATH, { kind: "respond", status: 200, delayMs: 50 });
  await writeNamespaceRouting(
    redis,
    testRouting(NAMESPACE, [{ name: "orders", event: "job.created", url: receiver.url(PATH) }]),
    keys,
    TEST_SECRET_BOX,
  );
  const start = (name: string) =>
    startDispatcherProcess({ name, redisUrl: inject("redisUrl"), keyTag, logDir }).then((d) => {
      dispatchers.push(d);
      return d;
    });
  const [victim, survivor] = await Promise.all([start("kill-a"), start("kill-b")]);

  const load = startLoad({
    urls: [victim.url, survivor.url],
    token: INGEST_TOKEN,
    eventsPerSecond: 250,
    targets: [{ namespace: NAMESPACE, type: "job.created", webhooks: ["orders"] }],
  });
  await sleep(3_000);
  const killedAt = Date.now();
  await victim.kill();
  await sleep(4_000);
  const result = await load.stop();
  await drain(redis, keys, receiver);

  const phases = await redisPhases(
    redis,
    keys,
    result.events.flatMap((event) => event.webhookIds),
  );
  const counts = account(result.events, receiver.copies(), failedOf(phases));
  reportRow(
    task,
    faultRow(
      1,
      "dispatcher `kill -9` (1 of 2)",
      result,
      counts,
      "0",
      `${result.retried} publishes retried on the other replica; its pending work claimed after 1 s`,
    ),
  );

  expect(counts.deliveries).toBeGreaterThan(500);
  expect(counts.lostIds).toEqual([]);
  expect(counts.failed).toBe(0);
  expect(counts.unexpected).toEqual([]);
  // at-least-once: a copy twice is the same notification under the same webhook-id
  expect(counts.differing).toEqual([]);
  expect([...phases.values()].every((phase) => phase === "SENT")).toBe(true);
  // the kill was felt by producers, and deliveries went on after it
  expect(result.events.filter((event) => event.acceptedAt > killedAt + 1_000).length).toBeGreaterThan(200);
}, 60_000);
