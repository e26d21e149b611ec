import { defineScript } from "./script.ts";

/**
 * Hands the turn on in ordered queues whose head is no longer QUEUED: its record gone (lost with
 * Redis's data, or expired after a pause longer than the retention) or settled without the turn
 * passing. Settling passes it atomically, so this never fires in normal operation; without it such
 * a queue would wait forever. Empty queues leave the set of queues.
 * KEYS: deliveries (the work queue), orderedQueues. ARGV: prefix.
 * Returns how many queues it moved on.
 */
export const healOrderedQueuesScript = defineScript(
  "heal-ordered-queues",
  `
--- @include "packed-fields"
--- @include "delivery-record"
--- @include "ordered-queue"

local prefix = ARGV[1]
local healed = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local head = redis.call('LINDEX', key, 0)
  if not head then
    redis.call('SREM', KEYS[2], key)
  elseif deliveryPhase(prefix .. 'delivery:' .. head) ~= 'QUEUED' then
    advanceOrderedQueue(prefix, KEYS[1], key, head)
    healed = healed + 1
  end
end
return healed
`,
);
