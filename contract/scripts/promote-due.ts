import { defineScript } from "./script.ts";

/**
 * Moves deliveries whose next attempt is due from the schedule to the work queue. The schedule
 * lives in Redis, so delayed retries survive dispatcher restarts; the move is atomic, so a due
 * delivery is queued once however many dispatchers promote concurrently.
 * KEYS: scheduled, deliveries. ARGV: prefix, nowMs, limit. Returns how many were taken.
 */
export const promoteDueScript = defineScript(
  "promote-due",
  `
--- @include "packed-fields"
--- @include "delivery-record"

local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  if deliveryPhase(ARGV[1] .. 'delivery:' .. id) == 'QUEUED' then
    redis.call('XADD', KEYS[2], '*', 'id', id)
  end
end
return #ids
`,
);
