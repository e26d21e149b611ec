import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { CONSUMER_GROUPS, type Keyspace } from "../../contract/keys.ts";

// Records as the previous version (format 1) wrote them, for the upgrade tests: its Lua scripts
// verbatim (fan-out, settle, retry; commit bd50033), with its keys: a hash per delivery, the event
// as JSON, a `seen:` marker, sorted set indexes and the status stream `status`. Nothing of the
// current code takes part in writing them.

const V1_STATUS_ENTRY = `
local function addStatusEntry(stream, maxLen, deliveryId, phase, namespace, webhook, eventType, eventId,
    attempts, at, failureReason)
  if failureReason then
    redis.call('XADD', stream, 'MAXLEN', '~', maxLen, '*', 'deliveryId', deliveryId, 'phase', phase,
      'namespace', namespace, 'webhook', webhook, 'eventType', eventType, 'eventId', eventId,
      'attempts', attempts, 'at', at, 'failureReason', failureReason)
  else
    redis.call('XADD', stream, 'MAXLEN', '~', maxLen, '*', 'deliveryId', deliveryId, 'phase', phase,
      'namespace', namespace, 'webhook', webhook, 'eventType', eventType, 'eventId', eventId,
      'attempts', attempts, 'at', at)
  end
end
`;

const V1_FANOUT = `
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
`;

const V1_SETTLE = `
local prefix, group, now, nowIso = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local retention, statusMaxLen = ARGV[5], ARGV[6]
local results = {}

for i = 1, (#ARGV - 6) / 8 do
  local at = 7 + (i - 1) * 8
  local o = { m = ARGV[at], id = ARGV[at + 1], v = ARGV[at + 2], k = ARGV[at + 3], a = ARGV[at + 4],
    due = ARGV[at + 5], reason = ARGV[at + 6], url = ARGV[at + 7] }
  if o.a == '' then o.a = nil end
  if o.reason == '' then o.reason = nil end
  if o.url == '' then o.url = nil end
  local result = 'k'
  if o.k == 'defer' then
    redis.call('ZADD', KEYS[2], o.due, o.id)
  elseif o.k ~= 'ack' then
    local key = prefix .. 'delivery:' .. o.id
    local cur = redis.call('HMGET', key, 'phase', 'version', 'attempts', 'attemptCount', 'cycleAttempts',
      'namespace', 'webhook', 'eventType', 'eventId', 'createdAt', 'updatedAt', 'nextAttemptAt')
    if not cur[1] then
      result = 'x'
    elseif cur[1] ~= 'QUEUED' or cur[2] ~= o.v then
      result = 's'
    else
      local attemptCount, cycleAttempts, attempts = tonumber(cur[4]), tonumber(cur[5]), cur[3]
      if o.a then
        if attempts == '[]' then
          attempts = '[' .. o.a .. ']'
        else
          attempts = string.sub(attempts, 1, -2) .. ',' .. o.a .. ']'
        end
        attemptCount = attemptCount + 1
        cycleAttempts = cycleAttempts + 1
      end
      local phase = 'QUEUED'
      if o.k == 'sent' then phase = 'SENT' elseif o.k == 'failed' then phase = 'FAILED' end
      redis.call('HSET', key, 'phase', phase, 'attempts', attempts, 'attemptCount', attemptCount,
        'cycleAttempts', cycleAttempts, 'version', tonumber(cur[2]) + 1, 'updatedAt', now)
      if o.url then redis.call('HSET', key, 'url', o.url) end
      if o.k == 'retry' then
        redis.call('HSET', key, 'nextAttemptAt', o.due)
        redis.call('ZADD', KEYS[2], o.due, o.id)
      else
        if cur[12] then redis.call('HDEL', key, 'nextAttemptAt') end
        if phase == 'FAILED' then
          redis.call('ZADD', KEYS[4], cur[10], o.id)
          redis.call('HSET', key, 'failureReason', o.reason or 'attempts-exhausted')
        end
      end
      -- records live for the retention after their last change; within 1 % of it, the TTL
      -- set by the previous change is close enough (saves a write on most deliveries)
      if tonumber(now) - tonumber(cur[11]) > tonumber(retention) / 100 then
        redis.call('PEXPIRE', key, retention)
      end
      local failureReason = nil
      if phase == 'FAILED' then failureReason = o.reason or 'attempts-exhausted' end
      addStatusEntry(KEYS[3], statusMaxLen, o.id, phase, cur[6], cur[7], cur[8], cur[9], attemptCount, nowIso,
        failureReason)
      result = 'a'
    end
  end
  if o.m ~= '' then redis.call('XACK', KEYS[1], group, o.m) end
  results[i] = result
end
return table.concat(results)
`;

const V1_RETRY = `
local id, token = ARGV[2], ARGV[3]
local key = ARGV[1] .. 'delivery:' .. id
local cur = redis.call('HMGET', key, 'phase', 'retryTokens', 'version', 'cycle', 'namespace', 'webhook',
  'eventType', 'eventId', 'attemptCount')
if not cur[1] then return 'not-found' end
-- another namespace's delivery: as good as absent to this caller
if ARGV[8] ~= '' and cur[5] ~= ARGV[8] then return 'not-found' end
local tokens = {}
if cur[2] then tokens = cjson.decode(cur[2]) end
for _, honoured in ipairs(tokens) do
  if honoured == token then return 'already-honoured' end
end
if cur[1] ~= 'FAILED' then return 'not-failed' end
tokens[#tokens + 1] = token
while #tokens > 20 do table.remove(tokens, 1) end
redis.call('HSET', key, 'phase', 'QUEUED', 'cycle', tonumber(cur[4]) + 1, 'cycleAttempts', '0',
  'version', tonumber(cur[3]) + 1, 'lastRetryToken', token, 'retryTokens', cjson.encode(tokens),
  'updatedAt', ARGV[4])
redis.call('HDEL', key, 'failureReason', 'nextAttemptAt')
redis.call('PEXPIRE', key, ARGV[6])
redis.call('ZREM', KEYS[3], id)
redis.call('XADD', KEYS[1], '*', 'id', id)
addStatusEntry(KEYS[2], ARGV[7], id, 'QUEUED', cur[5], cur[6], cur[7], cur[8], cur[9], ARGV[5], nil)
return 'requeued'
`;

async function runV1(
  redis: Redis,
  lua: string,
  keys: string[],
  args: Array<string | number>,
): Promise<unknown> {
  const script = `${V1_STATUS_ENTRY}\n${lua}`;
  const sha = createHash("sha1").update(script).digest("hex");
  try {
    return await redis.evalsha(sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!String(error).includes("NOSCRIPT")) throw error;
    return await redis.eval(script, keys.length, ...keys, ...args);
  }
}

export interface V1Delivery {
  id: string;
  webhook: string;
  uid: string;
  url: string;
  payload: string;
  maxAttempts: number;
}

export interface V1Event {
  namespace: string;
  id: string;
  type: string;
  occurredAt: string;
  /** epoch ms */
  ingestedAt: number;
  data: string;
  deliveries: V1Delivery[];
}

export const V1_LIMITS = { retentionMs: 600_000, statusStreamMaxLen: 10_000, idempotencyWindowMs: 600_000 };

/** Fans events out as format 1 did, through the HTTP API (no ingest stream entry). */
export async function v1Fanout(
  redis: Redis,
  keys: Keyspace,
  events: V1Event[],
  now: number,
  revision = 1,
): Promise<number[]> {
  const args: Array<string | number> = [revision, 0, events.length];
  for (const e of events) {
    const record = JSON.stringify({
      id: e.id,
      type: e.type,
      namespace: e.namespace,
      occurredAt: e.occurredAt,
      ingestedAt: new Date(e.ingestedAt).toISOString(),
      data: e.data,
      routing: e.deliveries.length > 0 ? "routed" : "no-subscribers",
      deliveryIds: e.deliveries.map((d) => d.id),
    });
    args.push("", e.namespace, e.id, e.type, e.occurredAt, String(e.ingestedAt), record, e.deliveries.length);
    for (const d of e.deliveries) args.push(d.id, d.webhook, d.uid, d.url, d.payload, String(d.maxAttempts));
  }
  return (await runV1(
    redis,
    V1_FANOUT,
    [
      keys.events,
      keys.deliveries,
      keys.legacyStatus,
      keys.legacyLog.all,
      keys.legacyLog.indexes,
      keys.deadLetters,
    ],
    [
      keys.prefix,
      CONSUMER_GROUPS.fanout,
      now,
      new Date(now).toISOString(),
      V1_LIMITS.retentionMs,
      V1_LIMITS.statusStreamMaxLen,
      V1_LIMITS.idempotencyWindowMs,
      100,
      ...args,
    ],
  )) as number[];
}

export interface V1Outcome {
  id: string;
  version: number;
  kind: "sent" | "retry" | "failed";
  /** the attempt as format 1 kept it: a JSON object */
  attempt: object;
  due?: number;
  reason?: string;
}

/** Records an attempt's outcome as format 1 did (no work entry to acknowledge). */
export async function v1Settle(
  redis: Redis,
  keys: Keyspace,
  outcome: V1Outcome,
  now: number,
): Promise<string> {
  return (await runV1(
    redis,
    V1_SETTLE,
    [keys.deliveries, keys.scheduled, keys.legacyStatus, keys.logFailed],
    [
      keys.prefix,
      CONSUMER_GROUPS.delivery,
      now,
      new Date(now).toISOString(),
      V1_LIMITS.retentionMs,
      V1_LIMITS.statusStreamMaxLen,
      "",
      outcome.id,
      String(outcome.version),
      outcome.kind,
      JSON.stringify(outcome.attempt),
      outcome.due === undefined ? "" : String(outcome.due),
      outcome.reason ?? "",
      "",
    ],
  )) as string;
}

/** Requeues a FAILED delivery as format 1 did. */
export async function v1Retry(
  redis: Redis,
  keys: Keyspace,
  id: string,
  token: string,
  now: number,
): Promise<string> {
  return (await runV1(
    redis,
    V1_RETRY,
    [keys.deliveries, keys.legacyStatus, keys.logFailed],
    [
      keys.prefix,
      id,
      token,
      now,
      new Date(now).toISOString(),
      V1_LIMITS.retentionMs,
      V1_LIMITS.statusStreamMaxLen,
      "",
    ],
  )) as string;
}
