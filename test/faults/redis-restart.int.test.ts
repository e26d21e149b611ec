import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { writeNamespaceRouting } from "../../contract/routing-config.ts";
import { startRedis, type TestRedis } from "../env/redis.ts";
import { type DispatcherProcess, startDispatcherProcess } from "../support/dispatcher-process.ts";
import { INGEST_TOKEN, TEST_SECRET_BOX, testRouting, uniqueKeyTag } from "../support/fixtures.ts";
import { faultRow, reportRow } from "./fault-table.ts";
import {
  account,
  drain,
  failedOf,
  type LoadReceiver,
  redisPhases,
  seconds,
  startLoad,
  startLoadReceiver,
} from "./load.ts";

// A Redis of its own with an append-only file, killed with SIGKILL mid-load (a crash: no last
// fsync, no shutdown) and started again on the same port from what its AOF kept, 1 s later.
//
// What each setting promises: `always` fsyncs before every reply, so an acknowledged write
// survives even the machine crashing; `everysec` fsyncs once a second, so a machine crash (power,
// kernel) loses up to about a second of acknowledged writes (two when the disk stalls). A process
// crash, which is what can be done here, loses neither: Redis has write()n the AOF before it
// answers, and the kernel keeps it. So `everysec` is asserted to lose nothing older than its
// window, and the window is reported as what it would be at this rate.

const NAMESPACE = "aof";
const PATH = "/aof";
const DOWN_MS = 1_000;
/** Redis documents up to 2 s of writes for everysec when fsync is slow; the bound asserted. */
const EVERYSEC_WINDOW_MS = 2_000;

let receiver: LoadReceiver | undefined;
let logDir: string;
let server: TestRedis | undefined;
let admin: Redis | undefined;
let dispatcher: DispatcherProcess | undefined;

beforeAll(async () => {
  logDir = await mkdtemp(join(tmpdir(), "faults-aof-"));
});
afterEach(async () => {
  await dispatcher?.stop();
  admin?.disconnect();
  await server?.stop();
  await receiver?.close();
  dispatcher = undefined;
  admin = undefined;
  server = undefined;
  receiver = undefined;
});
afterAll(async () => {
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

async function restartUnderLoad(appendfsync: "always" | "everysec") {
  const receiving = await startLoadReceiver();
  receiver = receiving;
  server = await startRedis({ appendfsync });
  admin = server.connect({ maxRetriesPerRequest: null });
  admin.on("error", () => {}); // reconnects after the restart
  const keyTag = uniqueKeyTag();
  const keys = keyspace(keyTag);
  await writeNamespaceRouting(
    admin,
    testRouting(NAMESPACE, [{ name: "orders", event: "job.created", url: receiving.url(PATH) }]),
    keys,
    TEST_SECRET_BOX,
  );
  dispatcher = await startDispatcherProcess({
    name: `aof-${appendfsync}`,
    redisUrl: server.url,
    keyTag,
    logDir,
  });

  const load = startLoad({
    urls: [dispatcher.url],
    token: INGEST_TOKEN,
    eventsPerSecond: 250,
    // an fsync per reply makes ingest slower: more producers in flight keep the rate
    lanes: 50,
    targets: [{ namespace: NAMESPACE, type: "job.created", webhooks: ["orders"] }],
  });
  await sleep(2_500);
  const restart = await server.restart({ signal: "SIGKILL", downMs: DOWN_MS });
  await sleep(3_000);
  const result = await load.stop();
  await drain(admin, keys, receiving);

  const phases = await redisPhases(
    admin,
    keys,
    result.events.flatMap((event) => event.webhookIds),
  );
  const counts = account(result.events, receiving.copies(), failedOf(phases));
  // what an OS crash could have taken with everysec: the last second acknowledged before the kill
  const atRisk = result.events.filter(
    (event) => event.acceptedAt <= restart.killedAt && event.acceptedAt > restart.killedAt - 1_000,
  ).length;
  const outage = result.refusedFrom
    ? `ingest 503 for ${seconds((result.refusedUntil ?? 0) - result.refusedFrom)}`
    : "no refusal seen";
  return { keys, result, counts, phases, restart, atRisk, outage };
}

describe("Redis restart (SIGKILL, then from its AOF)", () => {
  it("appendfsync always: no accepted event is lost", async ({ task }) => {
    const { result, counts, restart, outage } = await restartUnderLoad("always");
    reportRow(
      task,
      faultRow(
        2,
        "Redis `kill -9` + restart, AOF `appendfsync always`",
        result,
        counts,
        "0",
        `down ${seconds(restart.upAt - restart.killedAt)}, ${outage}; fsync before every reply: a machine crash loses nothing either`,
      ),
    );
    expect(counts.deliveries).toBeGreaterThan(500);
    expect(counts.lostIds).toEqual([]);
    expect(counts.failed).toBe(0);
    expect(counts.unexpected).toEqual([]);
    expect(counts.differing).toEqual([]);
    expect(result.retried).toBeGreaterThan(0); // producers did see the outage
    expect(result.events.filter((event) => event.acceptedAt > restart.upAt).length).toBeGreaterThan(150);
  }, 60_000);

  it("appendfsync everysec: anything lost was acknowledged within its window before the crash", async ({
    task,
  }) => {
    const { result, counts, restart, atRisk, outage } = await restartUnderLoad("everysec");
    reportRow(
      task,
      faultRow(
        3,
        "Redis `kill -9` + restart, AOF `appendfsync everysec`",
        result,
        counts,
        "≤ last 1–2 s",
        `down ${seconds(restart.upAt - restart.killedAt)}, ${outage}; a process crash loses nothing (page cache); a machine crash, the last ~1 s: ${atRisk} events here`,
      ),
    );
    expect(counts.deliveries).toBeGreaterThan(500);
    const lostEvents = counts.lostIds.map((id) => counts.eventOf.get(id)!);
    expect(
      lostEvents.filter((event) => event.acceptedAt < restart.killedAt - EVERYSEC_WINDOW_MS),
      "lost outside the fsync window",
    ).toEqual([]);
    expect(lostEvents.filter((event) => event.acceptedAt > restart.killedAt)).toEqual([]);
    expect(counts.failed).toBe(0);
    expect(counts.unexpected).toEqual([]);
    expect(counts.differing).toEqual([]);
    expect(result.events.filter((event) => event.acceptedAt > restart.upAt).length).toBeGreaterThan(150);
  }, 60_000);
});
