import { CONSUMER_GROUPS, type Keyspace } from "./keys.ts";
import type { RecordLimits } from "./record-limits.ts";
import {
  type DeliveryRecord,
  decodeEvent,
  type EventRecord,
  escapeField,
  fieldsToObject,
  legacyDeliveryView,
  type StatusEntry,
  StatusEntrySchema,
  type StoredDeliveryView,
  type StoredEventView,
  toDeliveryRecord,
  unpackDelivery,
  unpackEvent,
} from "./records.ts";
import type { RedisClient } from "./redis-client.ts";
import {
  type AddDeliveryResult,
  addDeliveriesScript,
  encodeNewDeliveries,
  type NewDelivery,
} from "./scripts/add-deliveries.ts";
import { splitBySize } from "./scripts/command-size.ts";
import { countFanoutFailureScript } from "./scripts/count-fanout-failure.ts";
import {
  encodeFanoutPlan,
  eventRecordTtl,
  type FanoutPlan,
  type FanoutPlanEvent,
  type FanoutPlanInvalid,
  fanoutEventsScript,
} from "./scripts/fanout-events.ts";
import { forwardLegacyStatusScript } from "./scripts/forward-legacy-status.ts";
import { noteMirrorErrorScript } from "./scripts/note-mirror-error.ts";
import { promoteDueScript } from "./scripts/promote-due.ts";
import { type ReadMode, readDeliveriesScript } from "./scripts/read-deliveries.ts";
import { requestRetryScript } from "./scripts/request-retry.ts";
import { loadScripts, queueScript, runScript, type ScriptArg } from "./scripts/script.ts";
import { encodeOutcomes, type SettleOutcome, settleDeliveriesScript } from "./scripts/settle-deliveries.ts";

/** Fan-out settings beside the record limits: duplicate-id window and dead-letter cap. */
export interface FanoutLimits extends RecordLimits {
  idempotencyWindowMs: number;
  deadLetterMaxLen: number;
}

/**
 * Records a fan-out plan (events, their deliveries, invalid stream entries); see fanout-events.ts
 * for the semantics. A plan larger than MAX_COMMAND_BYTES is recorded in several script calls,
 * each one atomic step for its events (and the acknowledgement of their stream entries): a failure
 * part-way leaves the earlier parts recorded, and recording the plan again finds them done
 * (idempotent by event and delivery id). Returns, per planned event, the deliveries it created
 * (negative: a duplicate event id, dropped).
 */
export async function fanoutEvents(
  redis: RedisClient,
  plan: FanoutPlan,
  limits: FanoutLimits,
  keys: Keyspace,
  now: number = Date.now(),
): Promise<number[]> {
  const parts = splitBySize(plan.events, plannedEventSize);
  const created: number[] = [];
  for (const [i, events] of (parts.length > 0 ? parts : [[]]).entries()) {
    const part: FanoutPlan = { ...plan, events, invalid: i === 0 ? plan.invalid : [] };
    const counts = (await runScript(
      redis,
      fanoutEventsScript,
      [
        keys.events,
        keys.deliveries,
        keys.status,
        keys.logAll,
        keys.logIndexes,
        keys.deadLetters,
        ...(limits.archive ? [keys.archiveOpen] : []),
      ],
      [
        keys.prefix,
        CONSUMER_GROUPS.fanout,
        now,
        limits.retentionMs,
        limits.statusStreamMaxLen,
        eventRecordTtl(limits),
        limits.deadLetterMaxLen,
        ...encodeFanoutPlan(part, { now, ...limits }),
      ],
    )) as number[];
    created.push(...counts);
  }
  return created;
}

/** About what an event adds to a fan-out call: its data, and per delivery its payload, URL and record. */
function plannedEventSize(event: FanoutPlanEvent): number {
  let size = 200 + event.data.length;
  for (const delivery of event.deliveries) size += 300 + delivery.payload.length + 2 * delivery.url.length;
  return size;
}

/**
 * Moves one ingest stream entry to the dead letters (`entryId`, `reason`, then its fields),
 * acknowledges it and forgets its failure count, in one transaction of plain commands: the
 * fan-out script may be what the entry breaks (e.g. too many fields for Lua's unpack).
 */
export async function deadLetterEntry(
  redis: RedisClient,
  entry: FanoutPlanInvalid,
  deadLetterMaxLen: number,
  keys: Keyspace,
): Promise<void> {
  const { entryId, reason, fields } = entry;
  const letter = ["entryId", entryId, "reason", reason, ...fields];
  const replies = await redis
    .multi()
    .xadd(keys.deadLetters, "MAXLEN", "~", deadLetterMaxLen, "*", ...letter)
    .xack(keys.events, CONSUMER_GROUPS.fanout, entryId)
    .del(keys.fanoutFailures(entryId))
    .exec();
  const failed = replies?.find(([error]) => error !== null)?.[0];
  if (replies === null || failed) throw failed ?? new Error("dead-letter transaction aborted");
}

/**
 * Counts one more failed fan-out of a single ingest entry (see count-fanout-failure.ts) and
 * returns the failures so far, by any replica: the count lives in Redis for `ttlMs`, so a replica
 * that claims the entry goes on from it. 0: the entry is no longer pending, someone settled it.
 */
export async function countFanoutFailure(
  redis: RedisClient,
  entryId: string,
  ttlMs: number,
  keys: Keyspace,
): Promise<number> {
  return Number(
    await runScript(
      redis,
      countFanoutFailureScript,
      [keys.events, keys.fanoutFailures(entryId)],
      [CONSUMER_GROUPS.fanout, entryId, ttlMs],
    ),
  );
}

/**
 * Records the outcomes of a batch of attempts and acknowledges their work-queue entries (see
 * settle-deliveries.ts), in one script call per MAX_COMMAND_BYTES of outcomes: each outcome is
 * recorded together with its acknowledgement. Returns one SettleResult character per outcome.
 */
export async function settleDeliveries(
  redis: RedisClient,
  outcomes: readonly SettleOutcome[],
  limits: RecordLimits,
  keys: Keyspace,
  now: number = Date.now(),
): Promise<string> {
  let results = "";
  for (const part of splitBySize(outcomes, settleOutcomeSize)) {
    results += (await runScript(
      redis,
      settleDeliveriesScript,
      [
        keys.deliveries,
        keys.scheduled,
        keys.status,
        keys.logFailed,
        ...(limits.archive ? [keys.archivePending, keys.archiveOpen] : []),
      ],
      [
        keys.prefix,
        CONSUMER_GROUPS.delivery,
        now,
        limits.retentionMs,
        limits.statusStreamMaxLen,
        ...encodeOutcomes(part),
      ],
    )) as string;
  }
  return results;
}

/** About what an outcome adds to a settle call. */
function settleOutcomeSize(outcome: SettleOutcome): number {
  return (
    100 +
    outcome.id.length +
    (outcome.attempt?.length ?? 0) +
    (outcome.reason?.length ?? 0) +
    (outcome.url?.length ?? 0)
  );
}

/**
 * Adds deliveries to events that exist (see add-deliveries.ts), each only if its id is new;
 * per delivery, "c" created or "e" existed already.
 */
export async function addDeliveries(
  redis: RedisClient,
  deliveries: readonly NewDelivery[],
  limits: RecordLimits,
  keys: Keyspace,
  now: number = Date.now(),
): Promise<AddDeliveryResult[]> {
  if (deliveries.length === 0) return [];
  const results = (await runScript(
    redis,
    addDeliveriesScript,
    [keys.deliveries, keys.status, keys.logAll, keys.logIndexes, keys.archiveOpen, keys.archiveAdopted],
    [keys.prefix, now, limits.retentionMs, limits.statusStreamMaxLen, ...encodeNewDeliveries(deliveries)],
  )) as string;
  return [...results] as AddDeliveryResult[];
}

/**
 * Moves up to `limit` deliveries whose next attempt is due (by `now`) from the schedule to the
 * work queue (see promote-due.ts); returns how many it took off the schedule.
 */
export async function promoteDue(
  redis: RedisClient,
  keys: Keyspace,
  limit: number,
  now: number = Date.now(),
): Promise<number> {
  return Number(
    await runScript(redis, promoteDueScript, [keys.scheduled, keys.deliveries], [keys.prefix, now, limit]),
  );
}

/**
 * The full record of a delivery (payload and the attempts kept), or null when unknown or expired
 * (or when the event record it takes its payload from is gone: RedisClient lost or evicted it).
 */
export async function readDelivery(
  redis: RedisClient,
  id: string,
  keys: Keyspace,
): Promise<DeliveryRecord | null> {
  const [read] = await readDeliveries(redis, [id], keys);
  return read ? toDeliveryRecord(id, read.view, read.event) : null;
}

/** A delivery record as stored (either format), decoded, with the event record it refers to. */
export interface StoredDeliveryRead {
  view: StoredDeliveryView;
  /** the event record, when the delivery takes its payload from it and it exists */
  event: StoredEventView | null;
}

/** Delivery records by id, in one round trip (null: no record). */
export async function readDeliveries(
  redis: RedisClient,
  ids: readonly string[],
  keys: Keyspace,
): Promise<Array<StoredDeliveryRead | null>> {
  return (await readRawDeliveries(redis, ids, keys, "full")).map((reply) => {
    if (!reply) return null;
    if (reply[0] === "1")
      return { view: legacyDeliveryView(fieldsToObject(reply.slice(1) as string[])), event: null };
    const [, value, event] = reply;
    return { view: unpackDelivery(value!), event: event ? unpackEvent(event) : null };
  });
}

/** The read-deliveries script's replies (see read-deliveries.ts), one per id. */
export async function readRawDeliveries(
  redis: RedisClient,
  ids: readonly string[],
  keys: Keyspace,
  mode: ReadMode,
): Promise<Array<Array<string | null> | null>> {
  if (ids.length === 0) return [];
  // KEYS[1] is not read: it sends the call to the partition's slot on a Cluster
  return (await runScript(
    redis,
    readDeliveriesScript,
    [keys.deliveries],
    [keys.prefix, mode, ...ids],
  )) as Array<Array<string | null> | null>;
}

/** Notes on the delivery's record that its WebhookEvent was refused (see note-mirror-error.ts). */
export async function noteMirrorError(
  redis: RedisClient,
  id: string,
  message: string,
  keys: Keyspace,
): Promise<boolean> {
  const note = escapeField(message.slice(0, 1024));
  return (await runScript(redis, noteMirrorErrorScript, [keys.delivery(id)], [note])) === 1;
}

export async function readEvent(
  redis: RedisClient,
  namespace: string,
  eventId: string,
  keys: Keyspace,
): Promise<EventRecord | null> {
  const value = await redis.get(keys.event(namespace, eventId));
  return value === null ? null : decodeEvent(namespace, eventId, value);
}

export type RetryOutcome = "requeued" | "already-honoured" | "not-failed" | "not-found";

/**
 * Whose deliveries a retry may touch: one namespace's (a WebhookEvent's retry annotation, a
 * namespace token), or any (the cluster-wide admin token). A delivery of another namespace is
 * "not-found": the caller learns nothing about it.
 */
export type RetryScope = { namespace: string } | "any-namespace";
/** Phases a retry may requeue a delivery from: FAILED (a retry), also SENT (a replay sends it again). */
export type RequeuablePhase = "FAILED" | "SENT";

/**
 * Asks for one more cycle of a FAILED delivery: back to QUEUED with a fresh budget of
 * `maxAttempts` attempts, queued at once. Idempotent per token: a token already honoured by this
 * delivery is a no-op ("already-honoured"), whatever the delivery's phase. Used by the HTTP API
 * and by the operator's retry annotation (the annotation value is the token).
 */
export async function requestRetry(
  redis: RedisClient,
  deliveryId: string,
  token: string,
  keys: Keyspace,
  limits: RecordLimits,
  scope: RetryScope,
): Promise<{ outcome: RetryOutcome }> {
  const [scriptKeys, args] = retryCall(deliveryId, token, keys, limits, scope);
  return { outcome: (await runScript(redis, requestRetryScript, scriptKeys, args)) as RetryOutcome };
}

/** requestRetry for many deliveries in one round trip; outcomes in the order of `deliveryIds`. */
export async function requestRetries(
  redis: RedisClient,
  deliveryIds: readonly string[],
  token: string,
  keys: Keyspace,
  limits: RecordLimits,
  scope: RetryScope,
  /** Phases a delivery may be requeued from; SENT sends a delivered one again (a replay). */
  phases: readonly RequeuablePhase[] = ["FAILED"],
): Promise<RetryOutcome[]> {
  if (deliveryIds.length === 0) return [];
  await loadScripts(redis, [requestRetryScript]);
  const pipeline = redis.pipeline();
  for (const id of deliveryIds)
    queueScript(pipeline, requestRetryScript, ...retryCall(id, token, keys, limits, scope, phases));
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([error, outcome]) => {
    if (error) throw error;
    return outcome as RetryOutcome;
  });
}

function retryCall(
  deliveryId: string,
  token: string,
  keys: Keyspace,
  limits: RecordLimits,
  scope: RetryScope,
  phases: readonly RequeuablePhase[] = ["FAILED"],
): [string[], ScriptArg[]] {
  if (token === "") throw new Error("a retry token must not be empty");
  const now = Date.now();
  return [
    [keys.deliveries, keys.status, keys.logFailed],
    [
      keys.prefix,
      deliveryId,
      escapeField(token),
      now,
      limits.retentionMs,
      limits.statusStreamMaxLen,
      scope === "any-namespace" ? "" : scope.namespace,
      phases.join(","),
    ],
  ];
}

/**
 * Moves what is left in the status stream of format 1 to the status stream, and deletes it once
 * empty (see forward-legacy-status.ts); returns how many entries it moved. The mirror's leader
 * runs it while dispatchers of format 1 may still be writing there (a rolling upgrade).
 */
export async function forwardLegacyStatus(
  redis: RedisClient,
  keys: Keyspace,
  limits: RecordLimits,
  count = 500,
): Promise<number> {
  return Number(
    await runScript(
      redis,
      forwardLegacyStatusScript,
      [keys.legacyStatus, keys.status],
      [CONSUMER_GROUPS.mirror, limits.statusStreamMaxLen, count],
    ),
  );
}

/**
 * Decodes one status stream entry (`XREAD`/`XREADGROUP`: its id and field list). The time of the
 * change is the entry id's, unless the entry says it (`at`: format 1, or moved from its stream).
 */
export function parseStatusEntry(entryId: string, fields: readonly string[]): StatusEntry {
  const { at, webhook, failureReason, ...entry } = fieldsToObject(fields);
  return StatusEntrySchema.parse({
    ...entry,
    // empty: the delivery id's readable part, `<webhook>-<20 characters>`
    webhook: webhook || entry.deliveryId?.slice(0, -21),
    at: at ?? new Date(Number(entryId.slice(0, entryId.indexOf("-")))).toISOString(),
    failureReason: failureReason || undefined,
  });
}
