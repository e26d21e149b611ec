import { setTimeout as sleep } from "node:timers/promises";
import type { RedisClient } from "../redis-client.ts";
import { renewClaimsScript } from "../scripts/renew-claims.ts";
import { runScript } from "../scripts/script.ts";
import { ErrorPause, type PausePolicy } from "./error-pause.ts";
import { removeIdleConsumers } from "./stream-maintenance.ts";

/** One stream entry as read: its id and its field list (`[name, value, name, value, …]`). */
export interface StreamEntry {
  id: string;
  fields: string[];
}

export interface Claimed {
  entries: StreamEntry[];
  /** Where the next XAUTOCLAIM of this sweep starts; "0-0" when the sweep is complete. */
  cursor: string;
}

export interface StreamConsumerOptions {
  /** Claims, renewals and acknowledgements. */
  redis: RedisClient;
  /** Blocking reads only: XREADGROUP … BLOCK holds its connection while it waits. */
  reader: RedisClient;
  stream: string;
  group: string;
  /** This process's name in the group; unique per process. */
  consumer: string;
  /** Names the loops in errors: `<name>-read`, `<name>-claim`. */
  name: string;
  /** Told about every failed step before the loop pauses (metrics, logs). */
  onError(error: unknown, step: string): void;
  /** Pause after failures; default STEADY_PAUSE. */
  pause?: PausePolicy;
}

/** Reading with back-pressure: how many entries the caller can take now (0: none). */
export interface ReadLoopOptions {
  room(): number;
  /** Resolves when room may have been made (called when room() is 0). */
  whenRoom(): Promise<void>;
  blockMs: number;
  handle(entries: StreamEntry[]): Promise<void>;
}

export interface ClaimLoopOptions {
  /** How often a sweep of the pending entries runs. */
  everyMs: number;
  /** Entries idle at least this long belong to a dead or stuck consumer. */
  minIdleMs: number;
  room(): number;
  handle(entries: StreamEntry[]): Promise<void>;
}

/**
 * One consumer of a Redis stream consumer group: the at-least-once plumbing that the fan-out,
 * the delivery worker and the operator's mirror share. An entry is acknowledged only once the
 * caller has durably recorded its effect; entries a dead consumer left pending are claimed
 * (XAUTOCLAIM) by a live one; entries a consumer is still working on are renewed so that no one
 * claims them. Entries trimmed from the stream while pending are acknowledged away.
 */
export class StreamConsumer {
  readonly #options: StreamConsumerOptions;
  readonly #stop = new AbortController();
  readonly #pauses = new Map<string, ErrorPause>();

  constructor(options: StreamConsumerOptions) {
    this.#options = options;
  }

  get stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Ends the loops (waits end at once); entries not acknowledged stay pending for others. */
  stop(): void {
    this.#stop.abort();
  }

  /** Creates the group at the start of the stream (entries written before any consumer count); idempotent. */
  ensureGroup(): Promise<void> {
    const { redis, stream, group } = this.#options;
    return ensureConsumerGroup(redis, stream, group);
  }

  /** Entries no consumer of the group has seen; [] when none arrived within `blockMs`. */
  async read(count: number, blockMs: number): Promise<StreamEntry[]> {
    const { reader, stream, group, consumer } = this.#options;
    const reply = (await this.#recreatingGroup("read", () =>
      reader.xreadgroup("GROUP", group, consumer, "COUNT", count, "BLOCK", blockMs, "STREAMS", stream, ">"),
    )) as Array<[string, RawEntry[]]> | null;
    return toEntries(reply?.[0]?.[1]);
  }

  /**
   * One step of a sweep over the group's pending entries: takes up to `count` entries idle at
   * least `minIdleMs` (0: all of them, whoever holds them). Start with cursor "0-0".
   */
  async claimIdle(minIdleMs: number, cursor: string, count: number): Promise<Claimed> {
    const { redis, stream, group, consumer } = this.#options;
    const reply = (await this.#recreatingGroup("claim", () =>
      redis.xautoclaim(stream, group, consumer, minIdleMs, cursor, "COUNT", count),
    )) as [string, RawEntry[], string[] | undefined] | null;
    if (reply === null) return { cursor: "0-0", entries: [] };
    const [next, entries, deleted] = reply;
    if (deleted !== undefined && deleted.length > 0) await this.ack(deleted);
    return { cursor: next, entries: toEntries(entries) };
  }

  /** Every pending entry of the group, whoever holds it (a new leader taking over). */
  async claimAllPending(batch = 1000): Promise<StreamEntry[]> {
    const claimed: StreamEntry[] = [];
    let cursor = "0-0";
    do {
      const step = await this.claimIdle(0, cursor, batch);
      cursor = step.cursor;
      claimed.push(...step.entries);
    } while (cursor !== "0-0");
    return claimed;
  }

  /**
   * Resets the idle time of entries this consumer still works on, so nobody claims them; never
   * takes back an entry another consumer claimed meanwhile. Returns the ids no longer owned here.
   */
  async renew(ids: readonly string[]): Promise<string[]> {
    const { redis, stream, group, consumer } = this.#options;
    const lost: string[] = [];
    for (let i = 0; i < ids.length; i += RENEW_BATCH) {
      const batch = ids.slice(i, i + RENEW_BATCH);
      lost.push(
        ...((await runScript(redis, renewClaimsScript, [stream], [group, consumer, ...batch])) as string[]),
      );
    }
    return lost;
  }

  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const { redis, stream, group } = this.#options;
    await redis.xack(stream, group, ...ids);
  }

  /** Forgets other consumers that hold nothing and were idle longer than `idleMs`. */
  removeIdleConsumers(idleMs: number): Promise<number> {
    const { redis, stream, group, consumer } = this.#options;
    return removeIdleConsumers(redis, stream, group, idleMs, consumer);
  }

  /** Reads new entries and hands them to `handle` until stopped; waits while there is no room. */
  async readLoop(options: ReadLoopOptions): Promise<void> {
    while (!this.stopped) {
      const room = options.room();
      if (room <= 0) {
        await options.whenRoom();
        continue;
      }
      try {
        const entries = await this.read(room, options.blockMs);
        if (entries.length > 0) await options.handle(entries);
        this.succeeded("read");
      } catch (error) {
        await this.pauseAfter(error, "read");
      }
    }
  }

  /** Every `everyMs`, sweeps the pending entries for work of dead consumers, as room allows. */
  async claimLoop(options: ClaimLoopOptions): Promise<void> {
    while (!this.stopped) {
      await sleep(options.everyMs, undefined, { signal: this.#stop.signal }).catch(() => {});
      let cursor = "0-0";
      try {
        while (!this.stopped) {
          const room = options.room();
          if (room <= 0) break;
          const claimed = await this.claimIdle(options.minIdleMs, cursor, room);
          cursor = claimed.cursor;
          if (claimed.entries.length > 0) await options.handle(claimed.entries);
          if (cursor === "0-0") break;
        }
        this.succeeded("claim");
      } catch (error) {
        await this.pauseAfter(error, "claim");
      }
    }
  }

  /**
   * Reports a failed step (`<name>-<step>`) and waits before the next try, longer after each
   * consecutive failure of the same step (per the pause policy); returns at once when stopped.
   */
  async pauseAfter(error: unknown, step: string): Promise<void> {
    if (this.stopped) return;
    this.#options.onError(error, `${this.#options.name}-${step}`);
    await this.#pause(step).failed(this.#stop.signal);
  }

  /** The step succeeded: the next failure pauses the shortest time again. */
  succeeded(step: string): void {
    this.#pause(step).succeeded();
  }

  /**
   * Runs a group command; when the group (or the whole stream) is gone — Redis restarted without
   * persistence, failed over to an empty replica, or was flushed — recreates it, reports it, and
   * answers null (nothing to read this time) instead of failing forever with NOGROUP.
   */
  async #recreatingGroup<T>(step: string, command: () => Promise<T>): Promise<T | null> {
    try {
      return await command();
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith("NOGROUP"))) throw error;
      this.#options.onError(error, `${this.#options.name}-${step}-group-recreated`);
      await this.ensureGroup();
      return null;
    }
  }

  #pause(step: string): ErrorPause {
    let pause = this.#pauses.get(step);
    if (pause === undefined) {
      pause = new ErrorPause(this.#options.pause);
      this.#pauses.set(step, pause);
    }
    return pause;
  }
}

/** Creates `group` at the start of `stream` (making the stream if need be); idempotent. */
export async function ensureConsumerGroup(redis: RedisClient, stream: string, group: string): Promise<void> {
  try {
    await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM");
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith("BUSYGROUP"))) throw error;
  }
}

const RENEW_BATCH = 1000;

type RawEntry = [id: string, fields: string[] | null] | null;

/** Entries as Redis sent them; an entry deleted from the stream since (null fields) is dropped. */
function toEntries(raw: RawEntry[] | undefined): StreamEntry[] {
  const entries: StreamEntry[] = [];
  for (const item of raw ?? []) {
    if (item !== null && item[1] !== null) entries.push({ id: item[0], fields: item[1] });
  }
  return entries;
}
