import { defineScript } from "./script.ts";

/**
 * Moves what is left in the status stream of format 1 (Keyspace.legacyStatus: written by
 * dispatchers of that version, read by operators of that version) to the status stream, and
 * deletes it once nothing is left: entries an operator read there but did not acknowledge, and
 * entries not read yet. Each keeps its `at`; `eventType` goes. Run by the operator's leader (the
 * mirror) until no dispatcher of format 1 writes there any more: then it finds no stream and
 * returns at once.
 * KEYS: legacyStatus, status. ARGV: mirror group, status stream cap, most entries per call.
 * Returns how many entries it moved.
 */
export const forwardLegacyStatusScript = defineScript(
  "forward-legacy-status",
  `
--- @include "status-entry"

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local group, maxLen, count = ARGV[1], ARGV[2], tonumber(ARGV[3])

-- where the mirror's group stands in it (a stream no operator read yet has none: from the start)
local last = nil
for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields.name == group then last = fields['last-delivered-id'] end
end
if not last then
  redis.call('XGROUP', 'CREATE', KEYS[1], group, '0')
  last = '0-0'
end

local moved = 0
local function move(entry)
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  if f.deliveryId and f.phase then
    addStatusEntry(KEYS[2], maxLen, f.deliveryId, f.phase, f.namespace or '', f.webhook or '', f.eventId or '',
      f.attempts or '0', f.failureReason, f.at)
    moved = moved + 1
  end
end

-- read by an operator of format 1 but not acknowledged (it stopped first)
local pending = redis.call('XPENDING', KEYS[1], group, '-', '+', count)
for _, p in ipairs(pending) do
  local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])[1]
  if entry then move(entry) end
  redis.call('XACK', KEYS[1], group, p[1])
end
-- not read yet
local unread = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', count)
for _, entry in ipairs(unread) do move(entry) end
if #unread > 0 then redis.call('XGROUP', 'SETID', KEYS[1], group, unread[#unread][1]) end
-- all moved: the stream goes (a dispatcher of format 1 still running would make it again)
if #pending < count and #unread < count then redis.call('DEL', KEYS[1]) end
return moved
`,
);
