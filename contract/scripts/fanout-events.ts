import type { EventType } from "../event-types.ts";
import { EVENT_FORMAT, type EventRouting, packNewEvent, packQueuedDelivery } from "../records.ts";
import { defineScript, type ScriptArg } from "./script.ts";

/** One event and the deliveries the dispatcher's routing table made of it. */
export interface FanoutPlanEvent {
  /** its ingest stream entry id, to acknowledge; "" for an event ingested by the API */
  entryId: string;
  namespace: string;
  id: string;
  type: EventType;
  occurredAt: string;
  /** epoch ms */
  ingestedAt: number;
  /** the producer's `data`, a JSON object */
  data: string;
  routing: EventRouting;
  deliveries: Array<{
    id: string;
    webhook: string;
    uid: string;
    url: string;
    /** the body to send (notification.ts), carried by the first attempt's work entry */
    payload: string;
    maxAttempts: number;
    /** the webhook is `ordering: Ordered`: the delivery joins its ordered queue (Keyspace.orderedQueue) */
    ordered?: boolean;
  }>;
}

export interface FanoutPlanInvalid {
  /** the ingest stream entry id (moved to the dead letters and acknowledged) */
  entryId: string;
  reason: string;
  fields: string[];
}

export interface FanoutPlan {
  /**
   * The routing revision the plan was made at, stamped on each delivery record
   * (`routingRevision`) and work entry (`r`): a replica whose routing lags behind it hands the
   * work back instead of failing it for a webhook it does not know yet.
   */
  revision?: number;
  events: FanoutPlanEvent[];
  invalid: FanoutPlanInvalid[];
}

/** What the fan-out applies besides the plan: record lifetimes, the duplicate-id window, caps. */
export interface FanoutArgs {
  /** epoch ms: the deliveries' creation time */
  now: number;
  retentionMs: number;
  idempotencyWindowMs: number;
}

/**
 * Turns a batch of events into delivery records, queued work, status entries and event records,
 * and acknowledges the stream entries among them — in one step, so an entry is acknowledged
 * (or the API answers) only once its deliveries exist. Invalid entries still pending are moved to
 * the dead letters (once: a retry finds them acknowledged). Idempotent: an event id seen within the
 * window is a duplicate (the marker in its event record, or the key `seen:<ns>:<id>` of format 1,
 * holds "api", or the first stream entry's id so that a retried fan-out of that very entry goes
 * through), and a delivery that already exists (same deterministic id) is left alone.
 * An event id seen again after its window is an event of its own: its deliveries are made again
 * (their records replaced), and those of the earlier one that are not made again keep a copy of
 * that event's data, since its event record is replaced.
 * KEYS: events, deliveries, status, logAll, logIndexes, deadLetters, and archiveOpen when the
 * dispatchers archive completed deliveries (each new delivery is added to it, by creation time).
 * ARGV: prefix, group, nowMs, retentionMs, statusMaxLen, eventTtlMs, deadLetterMaxLen, then
 * the routing revision and the plan as a flat list (see encodeFanoutPlan): flat, because payloads nested in JSON would be
 * escaped once per level and decoded again by cjson. Records come packed (records.ts).
 * Returns, per plan event, the number of deliveries it created, or -1 when it was a duplicate.
 */
export const fanoutEventsScript = defineScript(
  "fanout-events",
  `
--- @include "status-entry"
--- @include "packed-fields"
--- @include "delivery-record"
--- @include "event-record"
--- @include "log-index"
--- @include "ordered-queue"
--- @include "new-delivery"

local prefix, group, now = ARGV[1], ARGV[2], ARGV[3]
local retention, statusMaxLen, eventTtl, deadMaxLen = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local results = {}
local at = 8

-- the routing revision of the plan ("" when unknown)
local revision = ARGV[at]
at = at + 1
local logKeys = { logAll = KEYS[4], logIndexes = KEYS[5], deliveries = KEYS[2], status = KEYS[3],
  statusMaxLen = statusMaxLen, archiveOpen = KEYS[7] }

-- The marker of an event id: the first fields of its event record (format e2), else the key of
-- format 1. Returns the marker (nil when none is in force) and whether an e2 record exists.
local function eventMarker(eventKey, seenKey)
  local head = redis.call('GETRANGE', eventKey, 0, 63)
  if string.sub(head, 1, #EVENT_FORMAT + 1) == EVENT_FORMAT .. '\\t' then
    local fields = splitOn(head, '\\t')
    if tonumber(fields[E.seenUntil]) > tonumber(now) then return fields[E.seenBy], true end
    return nil, true
  end
  return (redis.call('GET', seenKey) or nil), false
end

-- The event record is about to be replaced by a later event with the same id: the deliveries of
-- the earlier one that this one does not make again keep a copy of what they took from it.
local function detachDeliveries(eventKey, e)
  local event, rest = splitRecord(redis.call('GET', eventKey))
  local data = escapeField(string.sub(rest, 2))
  local remade = {}
  for _, d in ipairs(e.deliveries) do remade[d.id] = true end
  for _, id in ipairs(splitList(event[E.deliveryIds] or '')) do
    local key = prefix .. 'delivery:' .. id
    if not remade[id] and redis.call('TYPE', key).ok == 'string' then
      local rec, attempts = loadDelivery(key)
      if referencesEvent(rec) then
        rec[D.occurredAt] = event[E.occurredAt]
        rec[D.ingestedAt] = event[E.ingestedAt]
        rec[D.data] = data
        saveDelivery(key, rec, attempts)
      end
    end
  end
end

-- invalid entries: count, then per entry: entry id, reason, field count, fields…
-- Only entries still pending: one no longer pending is in the dead letters already (a try of
-- this batch that failed further on, split and tried again, or another replica's claim).
local invalidCount = tonumber(ARGV[at])
at = at + 1
for _ = 1, invalidCount do
  local m, reason, fieldCount = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  if redis.call('XPENDING', KEYS[1], group, m, m, 1)[1] then
    local args = {'XADD', KEYS[6], 'MAXLEN', '~', deadMaxLen, '*', 'entryId', m, 'reason', reason}
    for j = 1, fieldCount do args[#args + 1] = ARGV[at + 2 + j] end
    redis.call(unpack(args))
    redis.call('XACK', KEYS[1], group, m)
  end
  at = at + 3 + fieldCount
end

-- events: count, then per event: entry id, namespace, id, type, event record, delivery count,
-- and per delivery: id, webhook, record, work entry's \`a\`, payload, ordered ('1' or '')
local eventCount = tonumber(ARGV[at])
at = at + 1
for _ = 1, eventCount do
  local e = { m = ARGV[at], ns = ARGV[at + 1], id = ARGV[at + 2], type = ARGV[at + 3], record = ARGV[at + 4],
    deliveries = {} }
  local deliveryCount = tonumber(ARGV[at + 5])
  at = at + 6
  for j = 1, deliveryCount do
    e.deliveries[j] = { id = ARGV[at], webhook = ARGV[at + 1], record = ARGV[at + 2], work = ARGV[at + 3],
      payload = ARGV[at + 4], ordered = ARGV[at + 5] }
    at = at + 6
  end
  local eventKey = prefix .. 'event:' .. e.ns .. ':' .. e.id
  local first, stored = eventMarker(eventKey, prefix .. 'seen:' .. e.ns .. ':' .. e.id)
  local created = -1
  -- fresh: this event's deliveries are (re)made; brandNew: not seen within the window, so its
  -- deliveries are made whether records with their ids exist or not (a retried or claimed entry
  -- checks each one instead)
  local fresh, brandNew
  if e.m == '' then
    fresh = not first
  else
    fresh = not first or first == e.m
  end
  brandNew = not first
  if fresh then
    created = 0
    if brandNew and stored then detachDeliveries(eventKey, e) end
    for _, d in ipairs(e.deliveries) do
      if brandNew or redis.call('EXISTS', prefix .. 'delivery:' .. d.id) == 0 then
        -- the first attempt's work entry carries what it needs (a, p, r)
        addDelivery(prefix, logKeys, e.ns, d.webhook, d.id, e.id, d.record, retention, now, d.ordered == '1',
          d.work, d.payload, revision)
        created = created + 1
      end
    end
    redis.call('SET', eventKey, e.record, 'PX', eventTtl)
  end
  if e.m ~= '' then redis.call('XACK', KEYS[1], group, e.m) end
  results[#results + 1] = created
end
return results
`,
);

/**
 * The plan as the script's flat ARGV tail, records packed: created at `now`, the event's marker
 * in force for the idempotency window.
 */
export function encodeFanoutPlan(plan: FanoutPlan, args: FanoutArgs): ScriptArg[] {
  const { now, idempotencyWindowMs } = args;
  const out: ScriptArg[] = [plan.revision ?? "", plan.invalid.length];
  for (const bad of plan.invalid) out.push(bad.entryId, bad.reason, bad.fields.length, ...bad.fields);
  out.push(plan.events.length);
  for (const e of plan.events) {
    const event = packNewEvent(
      {
        format: EVENT_FORMAT,
        seenUntil: now + idempotencyWindowMs,
        seenBy: e.entryId === "" ? "api" : e.entryId,
        type: e.type,
        // the producer gave none: the ingest time, implied
        occurredAt: e.occurredAt === new Date(e.ingestedAt).toISOString() ? undefined : e.occurredAt,
        ingestedAt: e.ingestedAt,
        routing: e.routing,
        deliveryIds: e.deliveries.map((d) => d.id),
      },
      e.data,
    );
    out.push(e.entryId, e.namespace, e.id, e.type, event, e.deliveries.length);
    for (const d of e.deliveries) {
      const record = packQueuedDelivery({
        eventId: e.id,
        namespace: e.namespace,
        webhook: d.webhook,
        webhookUid: d.uid,
        eventType: e.type,
        url: d.url,
        maxAttempts: d.maxAttempts,
        createdAt: now,
        routingRevision: plan.revision,
        ordered: d.ordered,
      });
      // the first attempt's work entry: version, namespace, webhook, ingestedAt, URL (Keyspace.deliveries)
      const work = `0\n${e.namespace}\n${d.webhook}\n${e.ingestedAt}\n${d.url}`;
      out.push(d.id, d.webhook, record, work, d.payload, d.ordered ? "1" : "");
    }
  }
  return out;
}

/** How long an event record lives at first: its deliveries' retention, and at least the window. */
export function eventRecordTtl(args: Pick<FanoutArgs, "retentionMs" | "idempotencyWindowMs">): number {
  return Math.max(args.retentionMs, args.idempotencyWindowMs);
}
