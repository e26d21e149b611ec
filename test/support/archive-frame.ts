import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, inject } from "vitest";
import { createDatabase, startPostgres, type TestPostgres } from "../env/postgres.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

// The frame of a suite that archives into a real PostgreSQL 15: one server per test file (initdb +
// postgres), a fresh database per test, the run's Redis and a receiver on 127.0.0.1.
// `useArchiveFrame()` registers the file's beforeAll and afterAll; `postgresServer`, `redis` and
// `receiver` are set while its tests run (live bindings: vitest loads this module afresh for each
// test file). What a test starts on top (dispatchers, stores), its suite stops.

export let postgresServer: TestPostgres;
export let redis: Redis;
export let receiver: Receiver;

export function useArchiveFrame(): void {
  beforeAll(async () => {
    postgresServer = await startPostgres();
    redis = new Redis(inject("redisUrl"));
    receiver = await startReceiver();
  }, 60_000);
  afterAll(async () => {
    await receiver?.close();
    redis?.disconnect();
    await postgresServer?.destroy();
  });
}

/** A fresh database on the file's server, `<prefix>_<random>`; its URL. */
export function freshDatabase(prefix = "t"): Promise<string> {
  return createDatabase(postgresServer, `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 12)}`);
}
