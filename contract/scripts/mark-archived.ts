import { defineScript } from "./script.ts";

/**
 * After the archiver has written a batch to the durable log store: each delivery written in
 * exactly the version still in Redis leaves the pending set and keeps only the hot window (its
 * record's TTL cut to it); its event record too, once none of the event's deliveries still needs
 * it (every one archived or gone), but never below the event id's idempotency window. A delivery
 * changed meanwhile stays pending (its newer version is archived next round); one back to QUEUED
 * (a retry) moves to the open set, where it holds the index horizon back until it completes; one
 * whose record is gone leaves the pending set (nothing left to archive).
 * KEYS: archivePending, archiveOpen, deliveries (unread: a script that reads records declares it,
 * see contract/README.md on slot migrations). ARGV: prefix, hotWindowMs, nowMs, then id, version pairs.
 * Returns how many left the pending set.
 */
export const markArchivedScript = defineScript(
  "mark-archived",
  `
--- @include "packed-fields"
--- @include "delivery-record"
--- @include "event-record"

local prefix, hot, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local removed = 0

-- PEXPIRE's LT (Redis 7.0) sets the shorter expiry in one command; older servers read the TTL first
local expireLt = (redis.REDIS_VERSION_NUM or 0) >= 0x070000
local function cutTtl(key, ms)
  if expireLt then
    redis.call('PEXPIRE', key, ms, 'LT')
    return
  end
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or ttl > ms then redis.call('PEXPIRE', key, ms) end
end

-- true when no delivery of the event still needs its record: each archived (final, not pending,
-- not open) or gone. \`archived\` is one of them, just marked: not looked up again
local function eventDone(eventKey, archived)
  local value = redis.call('GET', eventKey)
  if not value then return false, nil end
  local event = splitRecord(value)
  for _, sibling in ipairs(splitList(event[E.deliveryIds] or '')) do
    local phase = sibling ~= archived and deliveryPhase(prefix .. 'delivery:' .. sibling)
    if phase == 'QUEUED' then return false, nil end
    if phase and (redis.call('ZSCORE', KEYS[1], sibling) or redis.call('ZSCORE', KEYS[2], sibling)) then
      return false, nil
    end
  end
  return true, tonumber(event[E.seenUntil])
end

for i = 4, #ARGV, 2 do
  local id, version = ARGV[i], ARGV[i + 1]
  local key = prefix .. 'delivery:' .. id
  local rec = loadDelivery(key)
  if not rec then
    removed = removed + redis.call('ZREM', KEYS[1], id)
  elseif rec[D.phase] == 'QUEUED' then
    removed = removed + redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], rec[D.createdAt], id)
  elseif rec[D.version] == version then
    removed = removed + redis.call('ZREM', KEYS[1], id)
    cutTtl(key, hot)
    if referencesEvent(rec) then
      local eventKey = eventKeyOf(prefix, rec)
      local done, seenUntil = eventDone(eventKey, id)
      if done then cutTtl(eventKey, math.max(hot, (seenUntil or 0) - now)) end
    end
  end
end
return removed
`,
);
