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
import type { Behaviour } from "../support/receiver.ts";
import { faultRow, reportRow } from "./fault-table.ts";
import {
  account,
  combined,
  drain,
  failedOf,
  type LoadReceiver,
  percentile,
  redisPhases,
  startLoad,
  startLoadReceiver,
  toWebhook,
} from "./load.ts";

// Three endpoints misbehave for a few seconds mid-load, each its own way, while a healthy one
// beside them takes four times their traffic: one hangs (never answers: each attempt ends at the
// 1 s timeout), one resets the connection, one answers 200 after 500 ms. The design: their
// deliveries are retried and end SENT or FAILED (3 attempts), none lost, and the healthy
// endpoint is not delayed (per-endpoint concurrency, no head-of-line blocking).

const NAMESPACE = "receivers";
const FAULT_MS = 3_000;
const TIMEOUT_MS = 1_000;
const FAULTS: ReadonlyArray<{ webhook: string; behaviour: Behaviour; label: string; note: string }> = [
  {
    webhook: "hang",
    behaviour: { kind: "hang" },
    label: "receiver hangs 3 s",
    note: "16 attempts at a time time out (1 s), the rest wait; sent after",
  },
  {
    webhook: "reset",
    behaviour: { kind: "reset" },
    label: "receiver resets connections 3 s",
    note: "FAILED: all 3 attempts inside the fault",
  },
  {
    webhook: "slow",
    behaviour: { kind: "respond", status: 200, delayMs: 500 },
    label: "receiver answers in 500 ms for 3 s",
    note: "within the 1 s timeout: slower, not failing",
  },
];

let redis: Redis;
/** One receiver (origin) per endpoint: the dispatcher limits concurrency per origin. */
const receivers = new Map<string, LoadReceiver>();
let logDir: string;
let dispatcher: DispatcherProcess | undefined;

beforeAll(async () => {
  redis = new Redis(inject("redisUrl"));
  for (const webhook of ["healthy", ...FAULTS.map((f) => f.webhook)]) {
    receivers.set(webhook, await startLoadReceiver());
  }
  logDir = await mkdtemp(join(tmpdir(), "faults-receivers-"));
});
afterAll(async () => {
  await dispatcher?.stop();
  await Promise.all([...receivers.values()].map((receiver) => receiver.close()));
  redis?.disconnect();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

function endpoint(webhook: string): LoadReceiver {
  return receivers.get(webhook)!;
}

it("receivers that hang, reset or answer slowly: their deliveries retried or FAILED, none lost, the healthy one not delayed", async ({
  task,
}) => {
  const keyTag = uniqueKeyTag();
  const keys = keyspace(keyTag);
  await writeNamespaceRouting(
    redis,
    testRouting(
      NAMESPACE,
      [
        { name: "healthy", event: "job.created", url: endpoint("healthy").url("/healthy") },
        ...FAULTS.map(({ webhook }) => ({
          name: webhook,
          event: "job.updated" as const,
          url: endpoint(webhook).url(`/${webhook}`),
        })),
      ],
      {
        delivery: {
          maxAttempts: 3,
          timeoutMs: TIMEOUT_MS,
          backoff: { initialDelayMs: 100, maxDelayMs: 400, multiplier: 2 },
          // counts attempts and FAILED deliveries per fault: the breaker (on by default) would hold them
          circuitBreaker: { consecutiveFailures: 0 },
        },
      },
    ),
    keys,
    TEST_SECRET_BOX,
  );
  dispatcher = await startDispatcherProcess({
    name: "receivers",
    redisUrl: inject("redisUrl"),
    keyTag,
    logDir,
  });

  const load = startLoad({
    urls: [dispatcher.url],
    token: INGEST_TOKEN,
    eventsPerSecond: 250,
    targets: [
      { namespace: NAMESPACE, type: "job.created", webhooks: ["healthy"], weight: 4 },
      { namespace: NAMESPACE, type: "job.updated", webhooks: FAULTS.map((f) => f.webhook) },
    ],
  });
  await sleep(2_500);
  const faultFrom = Date.now();
  for (const { webhook, behaviour } of FAULTS) endpoint(webhook).fault(`/${webhook}`, behaviour);
  await sleep(FAULT_MS);
  for (const { webhook } of FAULTS) endpoint(webhook).fault(`/${webhook}`, undefined);
  const faultUntil = Date.now();
  await sleep(2_500);
  const result = await load.stop();
  const all = combined([...receivers.values()]);
  await drain(redis, keys, all);

  const phases = await redisPhases(
    redis,
    keys,
    result.events.flatMap((event) => event.webhookIds),
  );
  const failed = failedOf(phases);
  const copies = all.copies();
  const counts = account(result.events, copies, failed);
  // the healthy endpoint: time from the producer's POST to the first copy, before and during the faults
  const healthy = account(toWebhook(result.events, "healthy"), copies, failed);
  const latency = (from: number, until: number) =>
    percentile(
      [...healthy.eventOf]
        .filter(([, event]) => event.firstTriedAt >= from && event.firstTriedAt < until)
        .map(([id, event]) => (copies.get(id)?.[0]?.at ?? Number.POSITIVE_INFINITY) - event.firstTriedAt),
      99,
    );
  const p99Before = latency(result.startedAt + 500, faultFrom);
  const p99During = latency(faultFrom, faultUntil);
  reportRow(
    task,
    faultRow(
      12,
      "healthy endpoint beside those three",
      result,
      healthy,
      "0",
      `p99 POST → delivered: ${p99Before} ms before the faults, ${p99During} ms during`,
    ),
  );

  for (const [i, { webhook, label, note }] of FAULTS.entries()) {
    const own = account(toWebhook(result.events, webhook), copies, failed);
    const retried = [...own.eventOf.keys()].filter((id) => (copies.get(id)?.length ?? 0) > 1).length;
    reportRow(task, faultRow(9 + i, label, result, own, "0", `${retried} needed > 1 attempt; ${note}`));
    // every delivery of the misbehaving endpoint ended SENT or FAILED, and FAILED only around the fault
    expect(own.lostIds, webhook).toEqual([]);
    for (const id of own.failedIds) {
      const event = own.eventOf.get(id)!;
      expect(event.firstTriedAt, `${webhook} ${id} FAILED`).toBeGreaterThan(faultFrom - 4 * TIMEOUT_MS);
      expect(event.firstTriedAt, `${webhook} ${id} FAILED`).toBeLessThan(faultUntil);
    }
    const after = [...own.eventOf].filter(([, event]) => event.firstTriedAt > faultUntil + 500);
    expect(after.length, webhook).toBeGreaterThan(50);
    expect(after.filter(([id]) => failed.has(id))).toEqual([]);
  }

  expect(counts.deliveries).toBeGreaterThan(800);
  expect(counts.lostIds).toEqual([]);
  expect(counts.unexpected).toEqual([]);
  expect(counts.differing).toEqual([]);
  // the slow endpoint answers within the timeout: slow, not failing
  expect(account(toWebhook(result.events, "slow"), copies, failed).failed).toBe(0);
  // the hanging and resetting endpoints did fail some deliveries (the fault was real)…
  expect(account(toWebhook(result.events, "reset"), copies, failed).failed).toBeGreaterThan(0);
  // …and the healthy endpoint beside them lost nothing and was not held up by a hanging attempt
  expect(healthy.lost + healthy.failed).toBe(0);
  expect(p99During).toBeLessThan(TIMEOUT_MS);
}, 60_000);
