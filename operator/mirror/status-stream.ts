import type { Redis } from "ioredis";
import { parseStatusEntry } from "../../contract/deliveries.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { StatusEntry } from "../../contract/records.ts";

// The operator's side of the dispatcher's status stream: one consumer group for the
// mirror, so every state change is read at least once across restarts and failovers.
// An entry is acknowledged only after its state is in the API server; entries a dead
// reader held are claimed by the next one (XAUTOCLAIM).

export const MIRROR_GROUP = "operator-mirror";

export interface StreamEntry {
  id: string;
  /** Undefined when the entry does not decode (it is acknowledged and skipped). */
  entry: StatusEntry | undefined;
}

type RawEntry = [id: string, fields: string[] | null];

export class StatusStreamConsumer {
  private readonly redis: Redis;
  private readonly blocking: Redis;
  private readonly stream: string;
  readonly consumer: string;

  /**
   * `blocking` serves only the blocking reads (a connection of its own: while XREADGROUP
   * waits, nothing else can use it); `redis` everything else, acknowledgements included.
   */
  constructor(connections: { redis: Redis; blocking: Redis }, keys: Keyspace, consumer: string) {
    this.redis = connections.redis;
    this.blocking = connections.blocking;
    this.stream = keys.status;
    this.consumer = consumer;
  }

  /** Creates the group at the start of the stream (so nothing already there is missed); idempotent. */
  async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup("CREATE", this.stream, MIRROR_GROUP, "0", "MKSTREAM");
    } catch (err) {
      if (!String((err as Error).message).startsWith("BUSYGROUP")) throw err;
    }
  }

  /**
   * Takes over every entry delivered to any reader of the group but not acknowledged
   * (a previous leader's, or this process's before a restart). Only the leader reads,
   * so whatever is pending is orphaned. Entries trimmed from the stream meanwhile are
   * acknowledged away.
   */
  async claimPending(batch = 1000): Promise<StreamEntry[]> {
    const claimed: StreamEntry[] = [];
    let cursor = "0-0";
    do {
      const reply = (await this.redis.xautoclaim(
        this.stream,
        MIRROR_GROUP,
        this.consumer,
        0,
        cursor,
        "COUNT",
        batch,
      )) as [string, RawEntry[], string[]?];
      cursor = reply[0];
      claimed.push(...reply[1].filter(([, fields]) => fields !== null).map(decode));
      const deleted = reply[2] ?? [];
      if (deleted.length > 0) await this.ack(deleted);
    } while (cursor !== "0-0");
    return claimed;
  }

  /** Reads entries no reader of the group has seen, waiting up to `blockMs` for some. */
  async readNew(count: number, blockMs: number): Promise<StreamEntry[]> {
    const reply = (await this.blocking.xreadgroup(
      "GROUP",
      MIRROR_GROUP,
      this.consumer,
      "COUNT",
      count,
      "BLOCK",
      blockMs,
      "STREAMS",
      this.stream,
      ">",
    )) as Array<[string, RawEntry[]]> | null;
    return (reply?.[0]?.[1] ?? []).filter(([, fields]) => fields !== null).map(decode);
  }

  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.redis.xack(this.stream, MIRROR_GROUP, ...ids);
  }

  /** Removes other readers that hold nothing any more (earlier leaders), keeping XINFO tidy. */
  async removeIdleConsumers(): Promise<void> {
    const consumers = (await this.redis.xinfo("CONSUMERS", this.stream, MIRROR_GROUP)) as unknown[][];
    for (const fields of consumers) {
      const info: Record<string, unknown> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) info[String(fields[i])] = fields[i + 1];
      if (info.name !== this.consumer && Number(info.pending) === 0) {
        await this.redis.xgroup("DELCONSUMER", this.stream, MIRROR_GROUP, String(info.name));
      }
    }
  }
}

function decode([id, fields]: RawEntry): StreamEntry {
  try {
    return { id, entry: parseStatusEntry(fields ?? []) };
  } catch {
    return { id, entry: undefined };
  }
}
