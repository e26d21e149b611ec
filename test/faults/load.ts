/**
 * The fault suite's shared driver: a paced producer that publishes unique events and retries the
 * way producers are told to (503 and network errors, same event id), a receiver that records every
 * copy of every delivery by `webhook-id`, a wait for the dispatcher to drain, and the accounting
 * every scenario reports (sent / failed / duplicated / lost).
 *
 *   const receiver = await startLoadReceiver();
 *   const load = startLoad({ urls: [dispatcher.url], token, eventsPerSecond: 200, targets: [...] });
 *   await sleep(2_000); inject the fault; await sleep(3_000);
 *   const result = await load.stop();
 *   await drain(redis, keys, receiver);
 *   const counts = account(result.events, receiver.copies(), failedIds);
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { Pool } from "undici";
import { readDeliveries } from "../../contract/deliveries.ts";
import { deliveryId } from "../../contract/delivery-id.ts";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";
import { type Behaviour, startReceiver } from "../support/receiver.ts";

// --- producer -------------------------------------------------------------------------

export interface LoadTarget {
  readonly namespace: string;
  readonly type: string;
  /** The webhooks of `namespace` subscribed to `type`: one delivery each per event. */
  readonly webhooks: readonly string[];
  /** Share of the events (default 1). */
  readonly weight?: number;
}

export interface LoadOptions {
  /** Dispatcher base URLs. Lanes start spread over them; a refused request moves to the next. */
  readonly urls: readonly string[];
  /** An ingest token that may publish into every target's namespace. */
  readonly token: string;
  readonly targets: readonly LoadTarget[];
  readonly eventsPerSecond: number;
  /** Concurrent producers (default 20): many slow lanes keep the rate when ingest takes 100 ms. */
  readonly lanes?: number;
  /** A producer that cannot publish one event for this long fails the load (default 30 s). */
  readonly giveUpMs?: number;
}

export interface PublishedEvent {
  readonly id: string;
  readonly namespace: string;
  /** The `webhook-id` of each delivery the event is owed. */
  readonly webhookIds: readonly string[];
  /** When the first POST was sent, and when a 202 came back (epoch ms). */
  readonly firstTriedAt: number;
  readonly acceptedAt: number;
  /** Answers before the 202: 503s and network errors (epoch ms). */
  readonly refusedAt: readonly number[];
  /** The 202 said duplicate: an attempt that seemed to fail had stored the event after all. */
  readonly duplicate: boolean;
}

export interface LoadResult {
  readonly events: readonly PublishedEvent[];
  readonly startedAt: number;
  readonly endedAt: number;
  /** Accepted events per second over the whole load, outage included. */
  readonly eventsPerSecond: number;
  /** Events that needed a retry, and the span from the first refusal to the last (0: none). */
  readonly retried: number;
  readonly refusedFrom: number | undefined;
  readonly refusedUntil: number | undefined;
}

export interface Load {
  readonly startedAt: number;
  /** Events accepted so far. */
  accepted(): readonly PublishedEvent[];
  /** Stops producing, waits for every lane's last event; throws if a lane gave up. */
  stop(): Promise<LoadResult>;
}

/** Starts publishing at once; see LoadOptions. */
export function startLoad(options: LoadOptions): Load {
  const lanes = options.lanes ?? 20;
  const giveUpMs = options.giveUpMs ?? 30_000;
  const intervalMs = (lanes * 1000) / options.eventsPerSecond;
  const pools = options.urls.map((url) => new Pool(url, { connections: lanes }));
  // a weighted round-robin over the targets, shared by the lanes
  const wheel = options.targets.flatMap((target) => Array<LoadTarget>(target.weight ?? 1).fill(target));
  const prefix = randomBytes(3).toString("hex");
  const accepted: PublishedEvent[] = [];
  let sequence = 0;
  let running = true;
  let failure: unknown;
  const startedAt = Date.now();

  async function publish(lane: { pool: number }, target: LoadTarget, id: string): Promise<PublishedEvent> {
    const firstTriedAt = Date.now();
    // occurredAt from the producer, so a notification stored twice is byte-identical (README)
    const body = JSON.stringify({
      type: target.type,
      namespace: target.namespace,
      id,
      occurredAt: new Date(firstTriedAt).toISOString(),
      data: { ref: id },
    });
    const refusedAt: number[] = [];
    for (let attempt = 1; ; attempt++) {
      let status: number | "network-error";
      let duplicate = false;
      try {
        const response = await pools[lane.pool]!.request({
          path: "/v1/events",
          method: "POST",
          headers: { authorization: `Bearer ${options.token}`, "content-type": "application/json" },
          body,
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        status = response.statusCode;
        if (status === 202) duplicate = ((await response.body.json()) as { duplicate: boolean }).duplicate;
        else await response.body.dump();
      } catch {
        status = "network-error";
      }
      if (status === 202) {
        return {
          id,
          namespace: target.namespace,
          webhookIds: target.webhooks.map((webhook) => deliveryId(target.namespace, id, webhook)),
          firstTriedAt,
          acceptedAt: Date.now(),
          refusedAt,
          duplicate,
        };
      }
      if (status !== 503 && status !== "network-error")
        throw new Error(`event ${id}: unexpected HTTP ${status}`);
      refusedAt.push(Date.now());
      if (Date.now() - firstTriedAt > giveUpMs)
        throw new Error(`event ${id} not accepted within ${giveUpMs} ms`);
      lane.pool = (lane.pool + 1) % pools.length; // another replica may answer
      await sleep(Math.min(25 * 2 ** attempt, 400));
    }
  }

  /** One producer: an event every intervalMs, the next only once the last was accepted. */
  async function lane(index: number): Promise<void> {
    const state = { pool: index % pools.length };
    let next = Date.now() + (index * intervalMs) / lanes; // staggered, not in step
    await sleep(next - Date.now());
    for (let seq = 0; running; seq++) {
      const target = wheel[sequence++ % wheel.length]!;
      accepted.push(await publish(state, target, `${prefix}-${index}-${seq}`));
      next += intervalMs;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else next = Date.now(); // behind after an outage: no catch-up burst
    }
  }

  const lanePromises = Array.from({ length: lanes }, (_, i) =>
    lane(i).catch((error: unknown) => {
      failure ??= error;
      running = false;
    }),
  );

  return {
    startedAt,
    accepted: () => accepted,
    async stop() {
      running = false;
      await Promise.all(lanePromises);
      await Promise.all(pools.map((pool) => pool.close()));
      if (failure) throw failure;
      const endedAt = Date.now();
      const refusals = accepted.flatMap((event) => event.refusedAt);
      return {
        events: accepted,
        startedAt,
        endedAt,
        eventsPerSecond: Math.round(accepted.length / ((endedAt - startedAt) / 1000)),
        retried: accepted.filter((event) => event.refusedAt.length > 0).length,
        refusedFrom: refusals.length ? Math.min(...refusals) : undefined,
        refusedUntil: refusals.length ? Math.max(...refusals) : undefined,
      };
    },
  };
}

// --- receiver -------------------------------------------------------------------------

export interface Copy {
  readonly path: string;
  readonly at: number;
  readonly body: string;
  /** The receiver took it: answered (or is about to answer) 2xx. */
  readonly processed: boolean;
}

export interface LoadReceiver {
  url(path: string): string;
  /**
   * From now on `path` answers like this (or as the function says, given how many copies of the
   * delivery came before); `undefined` restores the default (200 at once).
   */
  fault(path: string, behaviour: Behaviour | ((earlierCopies: number) => Behaviour) | undefined): void;
  /** Every copy received so far, by `webhook-id`. */
  copies(): ReadonlyMap<string, readonly Copy[]>;
  /** Requests received so far. */
  count(): number;
  /** Forgets what was received (the next scenario on the same receiver starts from nothing). */
  reset(): void;
  close(): Promise<void>;
}

/**
 * A real HTTP receiver on 127.0.0.1 (test/support/receiver.ts) that answers 200 unless told
 * otherwise. One receiver is one endpoint for the dispatcher (its concurrency limit is per
 * origin): endpoints that must not share a limit need a receiver each (see combined()).
 */
export async function startLoadReceiver(): Promise<LoadReceiver> {
  const receiver = await startReceiver();
  const faults = new Map<string, (earlierCopies: number) => Behaviour>();
  const byId = new Map<string, Copy[]>();
  let count = 0;
  receiver.on("*", (request) => {
    const id = String(request.headers["webhook-id"]);
    const behaviour = faults.get(request.path)?.(byId.get(id)?.length ?? 0) ?? {
      kind: "respond",
      status: 200,
    };
    const copy: Copy = {
      path: request.path,
      at: request.receivedAt,
      body: request.body,
      processed: behaviour.kind === "respond" && behaviour.status >= 200 && behaviour.status < 300,
    };
    const copies = byId.get(id);
    if (copies) copies.push(copy);
    else byId.set(id, [copy]);
    count++;
    return behaviour;
  });
  return {
    url: (path) => receiver.url(path),
    fault(path, behaviour) {
      if (behaviour === undefined) faults.delete(path);
      else faults.set(path, typeof behaviour === "function" ? behaviour : () => behaviour);
    },
    copies: () => byId,
    count: () => count,
    reset() {
      byId.clear();
      count = 0;
    },
    close: () => receiver.close(),
  };
}

/** One view of the copies several receivers got (webhook-ids are unique across them). */
export function combined(receivers: readonly LoadReceiver[]): Pick<LoadReceiver, "copies" | "count"> {
  return {
    copies: () => new Map(receivers.flatMap((receiver) => [...receiver.copies()])),
    count: () => receivers.reduce((sum, receiver) => sum + receiver.count(), 0),
  };
}

// --- drain ----------------------------------------------------------------------------

/**
 * Waits until the dispatchers are done: nothing pending or scheduled in Redis, and no request
 * reached the receiver for `quietMs`. Redis errors (it may be down) count as not done.
 */
export async function drain(
  redis: Redis,
  keys: Keyspace,
  receiver: Pick<LoadReceiver, "count">,
  { quietMs = 1_500, timeoutMs = 40_000 }: { quietMs?: number; timeoutMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastCount = -1;
  let quietSince = Date.now();
  for (;;) {
    const count = receiver.count();
    if (count !== lastCount) {
      lastCount = count;
      quietSince = Date.now();
    }
    const idle = await Promise.all([
      redis.xpending(keys.deliveries, CONSUMER_GROUPS.delivery) as Promise<[number]>,
      redis.zcard(keys.scheduled),
    ]).then(
      ([pending, scheduled]) => pending[0] === 0 && scheduled === 0,
      () => false,
    );
    if (idle && Date.now() - quietSince >= quietMs) return;
    if (Date.now() > deadline) {
      throw new Error(`not drained after ${timeoutMs} ms (receiver got ${count} requests)`);
    }
    await sleep(100);
  }
}

// --- accounting -----------------------------------------------------------------------

export type Phase = "QUEUED" | "SENT" | "FAILED";

export interface Accounting {
  /** Deliveries owed: accepted events × the webhooks subscribed to each. */
  readonly deliveries: number;
  /** Taken by the receiver (a copy answered 2xx). */
  readonly sent: number;
  /** Not taken, and shown FAILED (in Redis, or as a WebhookEvent). */
  readonly failed: number;
  /** Copies taken beyond the first, over all deliveries (same webhook-id). */
  readonly duplicated: number;
  /** Neither taken nor shown FAILED. */
  readonly lost: number;
  readonly lostIds: readonly string[];
  readonly failedIds: readonly string[];
  /** webhook-ids received that no accepted event is owed (must be none). */
  readonly unexpected: readonly string[];
  /** webhook-ids whose copies were not byte-identical (must be none). */
  readonly differing: readonly string[];
  /** The event each owed webhook-id belongs to. */
  readonly eventOf: ReadonlyMap<string, PublishedEvent>;
}

/** Classifies every owed delivery; `failedIds` are those a log shows FAILED. */
export function account(
  events: readonly PublishedEvent[],
  copies: ReadonlyMap<string, readonly Copy[]>,
  failedIds: ReadonlySet<string>,
): Accounting {
  const eventOf = new Map<string, PublishedEvent>();
  for (const event of events) for (const id of event.webhookIds) eventOf.set(id, event);
  let sent = 0;
  let duplicated = 0;
  const failed: string[] = [];
  const lost: string[] = [];
  for (const id of eventOf.keys()) {
    const taken = (copies.get(id) ?? []).filter((copy) => copy.processed).length;
    if (taken > 0) {
      sent++;
      duplicated += taken - 1;
    } else if (failedIds.has(id)) failed.push(id);
    else lost.push(id);
  }
  const unexpected = [...copies.keys()].filter((id) => !eventOf.has(id));
  const differing = [...copies.entries()]
    .filter(([, list]) => new Set(list.map((copy) => copy.body)).size > 1)
    .map(([id]) => id);
  return {
    deliveries: eventOf.size,
    sent,
    failed: failed.length,
    duplicated,
    lost: lost.length,
    lostIds: lost,
    failedIds: failed,
    unexpected,
    differing,
    eventOf,
  };
}

/** The events as owed to one webhook only (to account for one endpoint). */
export function toWebhook(events: readonly PublishedEvent[], webhook: string): PublishedEvent[] {
  return events.flatMap((event) => {
    const id = deliveryId(event.namespace, event.id, webhook);
    return event.webhookIds.includes(id) ? [{ ...event, webhookIds: [id] }] : [];
  });
}

/** The phase of each delivery record in Redis (undefined: no record). */
export async function redisPhases(
  redis: Redis,
  keys: Keyspace,
  ids: Iterable<string>,
): Promise<Map<string, Phase | undefined>> {
  const list = [...ids];
  const phases = new Map<string, Phase | undefined>();
  for (let i = 0; i < list.length; i += 1_000) {
    const chunk = list.slice(i, i + 1_000);
    const reads = await readDeliveries(redis, chunk, keys);
    chunk.forEach((id, j) => {
      phases.set(id, reads[j]?.view.header.phase);
    });
  }
  return phases;
}

/** The ids whose phase is FAILED. */
export function failedOf(phases: ReadonlyMap<string, Phase | undefined>): Set<string> {
  return new Set([...phases].filter(([, phase]) => phase === "FAILED").map(([id]) => id));
}

/** The given percentile (0–100) of `values`, rounded; 0 for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
}

/** Seconds with one decimal, for notes. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
