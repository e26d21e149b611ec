import { defineScript } from "./script.ts";

/**
 * Appends events to the ingest stream unless their id was seen in the idempotency window.
 * KEYS: events stream. ARGV: prefix, windowMs, then per event: type, namespace, id, occurredAt, data.
 * Returns per event: the stream entry id of its first copy, and 1 if this copy was a duplicate.
 */
export const ingestEventsScript = defineScript(
  "ingest-events",
  `
local prefix, window = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 5 do
  local ns, id = ARGV[i + 1], ARGV[i + 2]
  local seenKey = prefix .. 'seen:' .. ns .. ':' .. id
  local first = redis.call('GET', seenKey)
  if first then
    out[#out + 1] = first
    out[#out + 1] = 1
  else
    local entryId = redis.call('XADD', KEYS[1], '*',
      'type', ARGV[i], 'namespace', ns, 'id', id, 'occurredAt', ARGV[i + 3], 'data', ARGV[i + 4])
    redis.call('SET', seenKey, entryId, 'PX', window)
    out[#out + 1] = entryId
    out[#out + 1] = 0
  end
end
return out
`,
);
