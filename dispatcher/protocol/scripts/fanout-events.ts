import { defineScript } from "./script.ts";

/** One ingest entry and the deliveries the dispatcher's routing table made of it. */
export interface FanoutPlanEvent {
  /** ingest stream entry id */
  m: string;
  ns: string;
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
  m: string;
  reason: string;
  fields: string[];
}

export interface FanoutPlan {
  events: FanoutPlanEvent[];
  invalid: FanoutPlanInvalid[];
}

/**
 * Turns a batch of ingest entries into delivery records, queued work and status entries, and
 * acknowledges the entries — in one step, so an entry is acknowledged only once its deliveries
 * exist. Idempotent: a delivery that already exists (same deterministic id) is left alone, and
 * an event id seen in the window with a different stream entry id is dropped as a duplicate.
 * KEYS: events, deliveries, status, logAll, logIndexes, deadLetters.
 * ARGV: prefix, group, nowMs, nowIso, retentionMs, statusMaxLen, windowMs, deadLetterMaxLen, plan JSON.
 * Returns, per plan event, the number of deliveries it created, or -1 when it was a duplicate.
 */
export const fanoutEventsScript = defineScript(
  "fanout-events",
  `
local prefix, group, now, nowIso = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local retention, statusMaxLen, window, deadMaxLen = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local plan = cjson.decode(ARGV[9])
local results = {}

for _, bad in ipairs(plan.invalid) do
  local args = {'XADD', KEYS[6], 'MAXLEN', '~', deadMaxLen, '*', 'entryId', bad.m, 'reason', bad.reason}
  for _, value in ipairs(bad.fields) do args[#args + 1] = value end
  redis.call(unpack(args))
  redis.call('XACK', KEYS[1], group, bad.m)
end

for _, e in ipairs(plan.events) do
  local seenKey = prefix .. 'seen:' .. e.ns .. ':' .. e.id
  local first = redis.call('GET', seenKey)
  local created = -1
  if not (first and first ~= e.m) then
    created = 0
    if not first then redis.call('SET', seenKey, e.m, 'PX', window) end
    local nsIndex = prefix .. 'log:ns:' .. e.ns
    local typeIndex = nsIndex .. ':type:' .. e.type
    for _, d in ipairs(e.deliveries) do
      local key = prefix .. 'delivery:' .. d.id
      if redis.call('EXISTS', key) == 0 then
        redis.call('HSET', key, 'id', d.id, 'eventId', e.id, 'eventType', e.type, 'namespace', e.ns,
          'webhook', d.webhook, 'webhookUid', d.uid, 'url', d.url, 'payload', d.payload,
          'phase', 'QUEUED', 'attempts', '[]', 'attemptCount', '0', 'maxAttempts', d.maxAttempts,
          'cycle', '1', 'cycleAttempts', '0', 'occurredAt', e.occurredAt, 'ingestedAt', e.ingestedAt,
          'createdAt', now, 'updatedAt', now, 'version', '0')
        redis.call('PEXPIRE', key, retention)
        local webhookIndex = nsIndex .. ':webhook:' .. d.webhook
        redis.call('ZADD', KEYS[4], now, d.id)
        redis.call('ZADD', nsIndex, now, d.id)
        redis.call('ZADD', webhookIndex, now, d.id)
        redis.call('ZADD', typeIndex, now, d.id)
        redis.call('SADD', KEYS[5], nsIndex, webhookIndex, typeIndex)
        redis.call('XADD', KEYS[2], '*', 'id', d.id)
        redis.call('XADD', KEYS[3], 'MAXLEN', '~', statusMaxLen, '*', 'deliveryId', d.id, 'phase', 'QUEUED',
          'namespace', e.ns, 'webhook', d.webhook, 'eventType', e.type, 'eventId', e.id,
          'attempts', '0', 'at', nowIso)
        created = created + 1
      end
    end
    redis.call('SET', prefix .. 'event:' .. e.ns .. ':' .. e.id, e.record, 'PX', retention)
  end
  redis.call('XACK', KEYS[1], group, e.m)
  results[#results + 1] = created
end
return results
`,
);
