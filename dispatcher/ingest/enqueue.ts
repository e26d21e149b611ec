import type { Redis } from "ioredis";
import type { Keyspace } from "../protocol/keys.ts";
import { ingestEventsScript } from "../protocol/scripts/ingest-events.ts";
import { runScript, type ScriptArg } from "../protocol/scripts/script.ts";
import type { StreamEvent } from "./event-schema.ts";

export interface EnqueueResult {
  id: string;
  /** The ingest stream entry id of the event's first copy. */
  entryId: string;
  /** A copy with this id was already accepted within the idempotency window. */
  duplicate: boolean;
}

/** Appends events to the ingest stream, dropping ids already seen in the window (one round trip). */
export async function enqueueEvents(
  redis: Redis,
  events: readonly StreamEvent[],
  idempotencyWindowMs: number,
  keys: Keyspace,
): Promise<EnqueueResult[]> {
  if (events.length === 0) return [];
  const args: ScriptArg[] = [keys.prefix, idempotencyWindowMs];
  for (const event of events) args.push(event.type, event.namespace, event.id, event.occurredAt, event.data);
  const reply = (await runScript(redis, ingestEventsScript, [keys.events], args)) as Array<string | number>;
  return events.map((event, i) => ({
    id: event.id,
    entryId: String(reply[i * 2]),
    duplicate: Number(reply[i * 2 + 1]) === 1,
  }));
}
