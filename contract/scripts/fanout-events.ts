import { defineScript, type ScriptArg } from "./script.ts";

/** One event and the deliveries the dispatcher's routing table made of it. */
export interface FanoutPlanEvent {
  /** its ingest stream entry id, to acknowledge; "" for an event ingested by the API */
  entryId: string;
  namespace: string;
  id: string;
  type: string;
  occurredAt: string;
  /** epoch ms */
  ingestedAt: string;
  /** the event record, JSON (EventRecordSchema) */
  record: string;
  deliveries: Array<{
    id: string;
    webhook: string;
    uid: string;
    url: string;
    payload: string;
    maxAttempts: string;
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

/**
 * Turns a batch of events into delivery records, queued work, status entries and event records,
 * and acknowledges the stream entries among them — in one step, so an entry is acknowledged
 * (or the API answers) only once its deliveries exist. Invalid entries still pending are moved to
 * the dead letters (once: a retry finds them acknowledged). Idempotent: an event id seen within the
 * window is a duplicate (the marker `seen:<ns>:<id>` holds "api", or the first stream entry's
 * id so that a retried fan-out of that very entry goes through), and a delivery that already
 * exists (same deterministic id) is left alone.
 * KEYS: events, deliveries, status, logAll, logIndexes, deadLetters.
 * ARGV: prefix, group, nowMs, nowIso, retentionMs, statusMaxLen, windowMs, deadLetterMaxLen, then
 * the routing revision and the plan as a flat list (see encodeFanoutPlan): flat, because payloads nested in JSON would be
 * escaped once per level and decoded again by cjson.
 * Returns, per plan event, the number of deliveries it created, or -1 when it was a duplicate.
 */
export const fanoutEventsScript = defineScript(
  "fanout-events",
  `
--- @include "status-entry"

local prefix, group, now, nowIso = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local retention, statusMaxLen, window, deadMaxLen = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local results = {}
local at = 9

-- the routing revision of the plan ("" when unknown)
local revision = ARGV[at]
at = at + 1

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

-- events: count, then per event: entry id, namespace, id, type, occurredAt, ingestedAt, record,
-- delivery count, and per delivery: id, webhook, uid, url, payload, maxAttempts
local eventCount = tonumber(ARGV[at])
at = at + 1
for _ = 1, eventCount do
  local e = { m = ARGV[at], ns = ARGV[at + 1], id = ARGV[at + 2], type = ARGV[at + 3],
    occurredAt = ARGV[at + 4], ingestedAt = ARGV[at + 5], record = ARGV[at + 6], deliveries = {} }
  local deliveryCount = tonumber(ARGV[at + 7])
  at = at + 8
  for j = 1, deliveryCount do
    e.deliveries[j] = { id = ARGV[at], webhook = ARGV[at + 1], uid = ARGV[at + 2], url = ARGV[at + 3],
      payload = ARGV[at + 4], maxAttempts = ARGV[at + 5] }
    at = at + 6
  end
  local seenKey = prefix .. 'seen:' .. e.ns .. ':' .. e.id
  local created = -1
  -- fresh: this event's deliveries are (re)made; brandNew: never seen, so no record can exist
  -- yet and the per-delivery EXISTS check is skipped (a retried or claimed entry keeps it)
  local fresh, brandNew
  if e.m == '' then
    fresh = redis.call('SET', seenKey, 'api', 'NX', 'PX', window)
    brandNew = fresh
  else
    local first = redis.call('GET', seenKey)
    fresh = not first or first == e.m
    brandNew = not first
    if not first then redis.call('SET', seenKey, e.m, 'PX', window) end
  end
  if fresh then
    created = 0
    local nsIndex = prefix .. 'log:ns:' .. e.ns
    for _, d in ipairs(e.deliveries) do
      local key = prefix .. 'delivery:' .. d.id
      if brandNew or redis.call('EXISTS', key) == 0 then
        redis.call('HSET', key, 'id', d.id, 'eventId', e.id, 'eventType', e.type, 'namespace', e.ns,
          'webhook', d.webhook, 'webhookUid', d.uid, 'url', d.url, 'payload', d.payload,
          'phase', 'QUEUED', 'attempts', '[]', 'attemptCount', '0', 'maxAttempts', d.maxAttempts,
          'cycle', '1', 'cycleAttempts', '0', 'occurredAt', e.occurredAt, 'ingestedAt', e.ingestedAt,
          'createdAt', now, 'updatedAt', now, 'version', '0', 'routingRevision', revision)
        redis.call('PEXPIRE', key, retention)
        local webhookIndex = nsIndex .. ':webhook:' .. d.webhook
        redis.call('ZADD', KEYS[4], now, d.id)
        redis.call('ZADD', nsIndex, now, d.id)
        redis.call('ZADD', webhookIndex, now, d.id)
        redis.call('SADD', KEYS[5], nsIndex, webhookIndex)
        redis.call('XADD', KEYS[2], '*', 'id', d.id,
          'a', '0\\n' .. e.ns .. '\\n' .. d.webhook .. '\\n' .. e.ingestedAt .. '\\n' .. d.url, 'p', d.payload,
          'r', revision)
        addStatusEntry(KEYS[3], statusMaxLen, d.id, 'QUEUED', e.ns, d.webhook, e.type, e.id, '0', nowIso, nil)
        created = created + 1
      end
    end
    redis.call('SET', prefix .. 'event:' .. e.ns .. ':' .. e.id, e.record, 'PX', retention)
  end
  if e.m ~= '' then redis.call('XACK', KEYS[1], group, e.m) end
  results[#results + 1] = created
end
return results
`,
);

/** The plan as the script's flat ARGV tail. */
export function encodeFanoutPlan(plan: FanoutPlan): ScriptArg[] {
  const args: ScriptArg[] = [plan.revision ?? "", plan.invalid.length];
  for (const bad of plan.invalid) args.push(bad.entryId, bad.reason, bad.fields.length, ...bad.fields);
  args.push(plan.events.length);
  for (const e of plan.events) {
    args.push(
      e.entryId,
      e.namespace,
      e.id,
      e.type,
      e.occurredAt,
      e.ingestedAt,
      e.record,
      e.deliveries.length,
    );
    for (const d of e.deliveries) args.push(d.id, d.webhook, d.uid, d.url, d.payload, d.maxAttempts);
  }
  return args;
}
