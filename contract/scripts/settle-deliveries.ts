import { defineScript, type ScriptArg } from "./script.ts";

/** The outcome of handling one work-queue entry, as the settle script reads it. */
export interface SettleOutcome {
  /** work-queue entry id to acknowledge ("" for none) */
  entryId: string;
  /** delivery id */
  id: string;
  /** the record version the worker read; a different one means someone else got there first */
  version: string;
  /**
   * sent/failed: final phase; retry: stay QUEUED and schedule at `due`; defer: hand the entry back
   * (schedule at `due`) without touching the record; ack: only acknowledge (stale entry).
   */
  kind: "sent" | "retry" | "failed" | "defer" | "ack";
  /** the attempt made, as a JSON object string */
  attempt?: string;
  /** epoch ms of the next attempt (retry, defer) */
  due?: string;
  reason?: string;
  /** the URL used, when it differs from the record's (the webhook's URL changed) */
  url?: string;
}

/**
 * Per outcome: "a" applied, "s" stale (someone else recorded this attempt), "k" only
 * acknowledged, "x" the record is gone (lost with Redis's data; only acknowledged).
 */
export type SettleResult = "a" | "s" | "k" | "x";

/**
 * Records the outcomes of a batch of attempts and acknowledges their work-queue entries, in one
 * step: an entry is acknowledged only together with its recorded outcome (at-least-once).
 * KEYS: deliveries, scheduled, status, logFailed.
 * ARGV: prefix, group, nowMs, nowIso, retentionMs, statusMaxLen, then 8 per outcome (see
 * encodeOutcomes; flat, so the attempt's JSON is not escaped again and decoded by cjson).
 * Returns one SettleResult character per outcome, as one string (one reply element per batch).
 */
export const settleDeliveriesScript = defineScript(
  "settle-deliveries",
  `
--- @include "status-entry"

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
`,
);

/** Outcomes as the script's flat ARGV tail: 8 values each, "" for absent ones. */
export function encodeOutcomes(outcomes: readonly SettleOutcome[]): ScriptArg[] {
  const args: ScriptArg[] = [];
  for (const o of outcomes)
    args.push(o.entryId, o.id, o.version, o.kind, o.attempt ?? "", o.due ?? "", o.reason ?? "", o.url ?? "");
  return args;
}
