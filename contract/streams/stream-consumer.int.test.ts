import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { uniqueKeyTag } from "../../test/support/fixtures.ts";
import { StreamConsumer, type StreamConsumerOptions } from "./stream-consumer.ts";

// The consumer-group plumbing the fan-out, the delivery worker and the mirror share, against a
// real Redis: what is read, claimed, renewed and acknowledged, and how the loops behave.

let redis: Redis;
let reader: Redis;
beforeAll(() => {
  redis = new Redis(inject("redisUrl"));
  reader = new Redis(inject("redisUrl"));
});
afterAll(() => {
  redis.disconnect();
  reader.disconnect();
});

const GROUP = "workers";

function consumerOn(stream: string, consumer: string, extra: Partial<StreamConsumerOptions> = {}) {
  return new StreamConsumer({
    redis,
    reader,
    stream,
    group: GROUP,
    consumer,
    name: "test",
    onError: () => {},
    pause: { initialMs: 10, maxMs: 40 },
    ...extra,
  });
}

async function append(stream: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await redis.xadd(stream, "*", "n", String(i)))!);
  return ids;
}

async function pendingOf(stream: string): Promise<Record<string, number>> {
  const reply = (await redis.xpending(stream, GROUP)) as [
    number,
    unknown,
    unknown,
    Array<[string, string]> | null,
  ];
  return Object.fromEntries((reply[3] ?? []).map(([name, count]) => [name, Number(count)]));
}

describe("StreamConsumer", () => {
  it("creates its group at the start of the stream, idempotently, and reads what was there before", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const ids = await append(stream, 3);
    const consumer = consumerOn(stream, "a");
    await consumer.ensureGroup();
    await consumer.ensureGroup();
    const read = await consumer.read(10, 10);
    expect(read.map((entry) => entry.id)).toEqual(ids);
    expect(read[0]!.fields).toEqual(["n", "0"]);
    expect(await consumer.read(10, 10)).toEqual([]);
  });

  it("keeps entries pending until acknowledged", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const consumer = consumerOn(stream, "a");
    await consumer.ensureGroup();
    const [first, second] = await append(stream, 2);
    await consumer.read(10, 10);
    expect(await pendingOf(stream)).toEqual({ a: 2 });
    await consumer.ack([first!]);
    await consumer.ack([]);
    expect(await pendingOf(stream)).toEqual({ a: 1 });
    await consumer.ack([second!]);
    expect(await pendingOf(stream)).toEqual({});
  });

  it("claims only entries idle long enough, and acknowledges those trimmed from the stream", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const dead = consumerOn(stream, "dead");
    const live = consumerOn(stream, "live");
    await dead.ensureGroup();
    const [kept, trimmed] = await append(stream, 2);
    await dead.read(10, 10);
    expect((await live.claimIdle(60_000, "0-0", 10)).entries).toEqual([]);

    await redis.xdel(stream, trimmed!);
    await sleep(30);
    const claimed = await live.claimIdle(20, "0-0", 10);
    expect(claimed.entries.map((entry) => entry.id)).toEqual([kept]);
    expect(claimed.cursor).toBe("0-0");
    expect(await pendingOf(stream)).toEqual({ live: 1 });
  });

  it("renewal keeps work from being claimed while its holder is alive", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const holder = consumerOn(stream, "holder");
    const other = consumerOn(stream, "other");
    await holder.ensureGroup();
    const ids = await append(stream, 3);
    await holder.read(10, 10);
    await sleep(60);
    await holder.renew(ids.slice(0, 2));
    const claimed = await other.claimIdle(50, "0-0", 10);
    expect(claimed.entries.map((entry) => entry.id)).toEqual([ids[2]]);
    expect(await pendingOf(stream)).toEqual({ holder: 2, other: 1 });
  });

  it("renewal never takes back work another consumer claimed meanwhile (no two attempts at once)", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const stalled = consumerOn(stream, "stalled");
    const taker = consumerOn(stream, "taker");
    await stalled.ensureGroup();
    const ids = await append(stream, 2);
    await stalled.read(10, 10);
    await sleep(60);
    // the stalled replica's work is taken over…
    expect((await taker.claimIdle(50, "0-0", 1)).entries.map((entry) => entry.id)).toEqual([ids[0]]);
    // …and its late renewal keeps what it still owns, and nothing else
    expect(await stalled.renew(ids)).toEqual([ids[0]]);
    expect(await pendingOf(stream)).toEqual({ stalled: 1, taker: 1 });
    const [ownerOfFirst] = (await redis.xpending(stream, GROUP, ids[0]!, ids[0]!, 1)) as Array<
      [string, string]
    >;
    expect(ownerOfFirst?.[1]).toBe("taker");
  });

  it("recreates its group when Redis lost it (restart without persistence, flush), instead of NOGROUP forever", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const steps: string[] = [];
    const consumer = consumerOn(stream, "a", { onError: (_error, step) => steps.push(step) });
    await consumer.ensureGroup();
    await redis.del(stream); // the stream and its group are gone
    expect(await consumer.read(10, 10)).toEqual([]);
    expect(steps).toEqual(["test-read-group-recreated"]);
    const [id] = await append(stream, 1);
    expect((await consumer.read(10, 10)).map((entry) => entry.id)).toEqual([id]);

    await redis.del(stream);
    expect(await consumer.claimIdle(0, "0-0", 10)).toEqual({ cursor: "0-0", entries: [] });
    expect(steps).toEqual(["test-read-group-recreated", "test-claim-group-recreated"]);
    expect(((await redis.xinfo("GROUPS", stream)) as unknown[]).length).toBe(1);
  });

  it("takes over every pending entry at once (a new leader), in batches", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const old = consumerOn(stream, "old-leader");
    const leader = consumerOn(stream, "new-leader");
    await old.ensureGroup();
    const ids = await append(stream, 7);
    await old.read(10, 10);
    expect((await leader.claimAllPending(3)).map((entry) => entry.id)).toEqual(ids);
    expect(await pendingOf(stream)).toEqual({ "new-leader": 7 });
    expect(await leader.removeIdleConsumers(0)).toBe(1);
    const consumers = (await redis.xinfo("CONSUMERS", stream, GROUP)) as unknown[][];
    expect(consumers.map((fields) => fields[1])).toEqual(["new-leader"]);
  });

  it("forgets only consumers that hold nothing and idled long enough, never itself", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const self = consumerOn(stream, "self");
    await self.ensureGroup();
    await append(stream, 3);
    await consumerOn(stream, "holder").read(1, 10);
    const idle = consumerOn(stream, "idle");
    await idle.ack((await idle.read(1, 10)).map((entry) => entry.id)); // done: holds none
    await self.ack((await self.read(1, 10)).map((entry) => entry.id));
    expect(await self.removeIdleConsumers(60_000)).toBe(0);
    await sleep(30);
    expect(await self.removeIdleConsumers(20)).toBe(1);
    const consumers = (await redis.xinfo("CONSUMERS", stream, GROUP)) as unknown[][];
    expect(consumers.map((fields) => fields[1]).sort()).toEqual(["holder", "self"]);
  });

  it("read loop: waits while there is no room, hands batches over, and pauses after a failure", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const errors: string[] = [];
    const consumer = consumerOn(stream, "a", { onError: (_error, step) => errors.push(step) });
    await consumer.ensureGroup();
    let room = 0;
    let makeRoom: () => void = () => {};
    const handled: string[][] = [];
    let failOnce = true;
    const loop = consumer.readLoop({
      room: () => room,
      whenRoom: () =>
        new Promise<void>((resolve) => {
          makeRoom = resolve;
        }),
      blockMs: 20,
      handle: async (entries) => {
        if (failOnce) {
          failOnce = false;
          throw new Error("recording failed");
        }
        handled.push(entries.map((entry) => entry.id));
      },
    });
    const ids = await append(stream, 3);
    await sleep(50);
    expect(await pendingOf(stream)).toEqual({}); // no room: nothing read

    room = 2;
    makeRoom();
    await waitFor(() => errors.length === 1 && handled.length === 1);
    expect(errors).toEqual(["test-read"]);
    // the failed batch stays pending (for the claim loop); reading went on after the pause
    expect(handled).toEqual([[ids[2]]]);
    expect(await pendingOf(stream)).toEqual({ a: 3 });
    consumer.stop();
    await loop;
  });

  it("claim loop: sweeps work of a dead consumer as room allows, and stops promptly", async () => {
    const stream = `{${uniqueKeyTag()}}:s`;
    const dead = consumerOn(stream, "dead");
    const live = consumerOn(stream, "live");
    await dead.ensureGroup();
    const ids = await append(stream, 5);
    await dead.read(10, 10);
    const handled: string[] = [];
    const loop = live.claimLoop({
      everyMs: 10,
      minIdleMs: 20,
      room: () => 2,
      handle: async (entries) => {
        handled.push(...entries.map((entry) => entry.id));
        await live.ack(entries.map((entry) => entry.id));
      },
    });
    await waitFor(() => handled.length === 5);
    expect(handled).toEqual(ids);
    const started = performance.now();
    live.stop();
    await loop;
    expect(performance.now() - started).toBeLessThan(500);
    expect(await pendingOf(stream)).toEqual({});
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(10);
  }
}
