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
   * (schedule at `due`, if the entry was still pending) without touching the record; ack: only
   * acknowledge (stale entry).
   */
  kind: "sent" | "retry" | "failed" | "defer" | "ack";
  /** the attempt made, packed (StoredAttemptSchema) */
  attempt?: string;
  /** epoch ms of the next attempt (retry, defer) */
  due?: string;
  reason?: string;
  /** the URL used, when it differs from the record's (the webhook's URL changed), escaped (escapeField) */
  url?: string;
}

/**
 * Per outcome: "a" applied, "s" stale (someone else recorded this attempt), "k" only
 * acknowledged, "x" the record is gone (lost with Redis's data; only acknowledged).
 */
export type SettleResult = "a" | "s" | "k" | "x";

/**
 * Records the outcomes of a batch of attempts and acknowledges their work-queue entries, in one
 * step: an entry is acknowledged only together with its recorded outcome (at-least-once). A
 * delivery of an ordered webhook that ends SENT or FAILED hands its queue's turn to the next one.
 * KEYS: deliveries, scheduled, status, logFailed, and archivePending, archiveOpen when the
 * dispatchers archive completed deliveries (a delivery that reaches SENT or FAILED moves from the
 * open set to the pending one, by creation time, until the archiver has written it).
 * ARGV: prefix, group, nowMs, retentionMs, statusMaxLen, then 8 per outcome (see
 * encodeOutcomes; flat, so the attempt's JSON is not escaped again and decoded by cjson).
 * A record of format 1 (a hash) is rewritten packed; the version guard applies to both alike.
 * Returns one SettleResult character per outcome, as one string (one reply element per batch).
 */
export const settleDeliveriesScript = defineScript(
  "settle-deliveries",
  `
--- @include "status-entry"
--- @include "packed-fields"
--- @include "delivery-record"
--- @include "ordered-queue"

local prefix, group, now = ARGV[1], ARGV[2], ARGV[3]
local retention, statusMaxLen = ARGV[4], ARGV[5]
local results = {}

for i = 1, (#ARGV - 5) / 8 do
  local at = 6 + (i - 1) * 8
  local o = { m = ARGV[at], id = ARGV[at + 1], v = ARGV[at + 2], k = ARGV[at + 3], a = ARGV[at + 4],
    due = ARGV[at + 5], reason = ARGV[at + 6], url = ARGV[at + 7] }
  if o.a == '' then o.a = nil end
  if o.reason == '' then o.reason = nil end
  if o.url == '' then o.url = nil end
  local result = 'k'
  local acknowledged = false
  if o.k == 'defer' then
    -- handed back only while its entry was still pending: a batch recorded twice (re-sent after
    -- a reconnect) must not schedule the delivery again once a new entry for it may be at work
    if o.m == '' or redis.call('XACK', KEYS[1], group, o.m) == 1 then
      redis.call('ZADD', KEYS[2], o.due, o.id)
    end
    acknowledged = true
  elseif o.k ~= 'ack' then
    local key = prefix .. 'delivery:' .. o.id
    local rec, attempts = loadDelivery(key)
    if not rec then
      result = 'x'
    elseif rec[D.phase] ~= 'QUEUED' or rec[D.version] ~= o.v then
      result = 's'
    else
      local attemptCount, cycleAttempts = tonumber(rec[D.attemptCount]), tonumber(rec[D.cycleAttempts])
      if o.a then
        attempts = appendAttempt(attempts, o.a)
        attemptCount = attemptCount + 1
        cycleAttempts = cycleAttempts + 1
      end
      local phase = 'QUEUED'
      if o.k == 'sent' then phase = 'SENT' elseif o.k == 'failed' then phase = 'FAILED' end
      local updatedBefore = tonumber(rec[D.updatedAt])
      rec[D.phase] = phase
      rec[D.attemptCount] = tostring(attemptCount)
      rec[D.cycleAttempts] = tostring(cycleAttempts)
      rec[D.version] = tostring(tonumber(rec[D.version]) + 1)
      rec[D.updatedAt] = now
      if o.url then rec[D.url] = o.url end
      local failureReason = nil
      if o.k == 'retry' then
        rec[D.nextAttemptAt] = o.due
        redis.call('ZADD', KEYS[2], o.due, o.id)
      else
        rec[D.nextAttemptAt] = ''
        if phase == 'FAILED' then
          failureReason = o.reason or 'attempts-exhausted'
          rec[D.failureReason] = failureReason
          redis.call('ZADD', KEYS[4], rec[D.createdAt], o.id)
        end
      end
      saveDelivery(key, rec, attempts)
      if KEYS[5] and phase ~= 'QUEUED' then
        redis.call('ZADD', KEYS[5], rec[D.createdAt], o.id)
        redis.call('ZREM', KEYS[6], o.id)
      end
      -- records live for the retention after their last change; within 1 % of it, the TTL
      -- set by the previous change is close enough (saves a write on most deliveries)
      if tonumber(now) - updatedBefore > tonumber(retention) / 100 then
        redis.call('PEXPIRE', key, retention)
        keepEventFor(prefix, rec, retention)
      end
      -- an ordered webhook's head is done: the next delivery in its queue gets its turn
      if phase ~= 'QUEUED' and rec[D.ordered] == '1' then
        advanceOrdered(prefix, KEYS[1], rec[D.namespace], rec[D.webhook], o.id)
      end
      addStatusEntry(KEYS[3], statusMaxLen, o.id, phase, rec[D.namespace], rec[D.webhook], rec[D.eventId],
        attemptCount, failureReason, nil)
      result = 'a'
    end
  end
  if o.m ~= '' and not acknowledged then redis.call('XACK', KEYS[1], group, o.m) end
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
