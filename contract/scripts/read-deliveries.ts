import { defineScript } from "./script.ts";

/** How much of each record read-deliveries returns. */
export type ReadMode =
  /** the first line of a packed record; the listing's fields of a format 1 hash */
  | "summary"
  /** the whole record, and the event record it takes its payload from */
  | "full";

/** The fields a listing shows of a format 1 hash (the rest, payload and attempts, is not read). */
export const LEGACY_SUMMARY_FIELDS = [
  "eventId",
  "eventType",
  "namespace",
  "webhook",
  "url",
  "phase",
  "attemptCount",
  "maxAttempts",
  "cycle",
  "createdAt",
  "updatedAt",
  "nextAttemptAt",
  "failureReason",
] as const;

/**
 * Reads delivery records of either format in one call (records.ts), with — for a full read — the
 * event record a packed one takes its payload from: one round trip where a pipeline would need two,
 * or a type check first. Reads only.
 * KEYS: the partition's work queue, only so that a Cluster runs it on the partition's node (the
 * records' keys are built from the prefix). ARGV: prefix, mode, delivery ids….
 * Returns per id: nil (no record); {'2', value, event value or nil} (packed; `summary`: its first
 * line only, no event); {'1', field, value, …} (a format 1 hash: HGETALL, or for `summary` the
 * LEGACY_SUMMARY_FIELDS present).
 */
export const readDeliveriesScript = defineScript(
  "read-deliveries",
  `
--- @include "packed-fields"
--- @include "delivery-record"

local prefix, mode = ARGV[1], ARGV[2]
local summaryFields = { ${LEGACY_SUMMARY_FIELDS.map((field) => `'${field}'`).join(", ")} }
local out = {}
for i = 3, #ARGV do
  local key = prefix .. 'delivery:' .. ARGV[i]
  -- a GET first: every record is packed but those of format 1 (a hash: GET refuses it, then TYPE
  -- says so); a TYPE per read was one command per delivery more
  local value = redis.pcall('GET', key)
  local kind = 'none'
  if type(value) == 'table' then
    kind = redis.call('TYPE', key).ok
  elseif value then
    kind = 'string'
  end
  if kind == 'string' then
    if mode == 'summary' then
      local newline = string.find(value, '\\n', 1, true)
      if newline then value = string.sub(value, 1, newline - 1) end
      out[#out + 1] = { '2', value }
    else
      local rec = unpackDelivery(value)
      local event = false
      if referencesEvent(rec) then event = redis.call('GET', eventKeyOf(prefix, rec)) end
      out[#out + 1] = { '2', value, event }
    end
  elseif kind == 'hash' then
    local reply = { '1' }
    if mode == 'summary' then
      local values = redis.call('HMGET', key, unpack(summaryFields))
      for j, field in ipairs(summaryFields) do
        if values[j] then
          reply[#reply + 1] = field
          reply[#reply + 1] = values[j]
        end
      end
    else
      for _, item in ipairs(redis.call('HGETALL', key)) do reply[#reply + 1] = item end
    end
    out[#out + 1] = reply
  else
    out[#out + 1] = false
  end
end
return out
`,
);
