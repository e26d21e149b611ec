import { defineScript } from "./script.ts";

/**
 * Brings a delivery that lives only in the durable log store back into Redis: its packed record
 * (payload inline) is written unless a record with that id exists, for the TTL given (the retention
 * to retry it; the hot window to answer the mirror's status request). For the mirror, also its
 * status entry as the settle script appended it (the same fields, from the record) with `at`, the
 * time of its last change: the mirror then shows its final state through its normal path.
 * KEYS: deliveries (unread: the partition's slot), status. ARGV: prefix, id, packed record, ttlMs,
 * and for a status entry the stream's cap and `at` (ISO).
 * Returns 1 when written, 0 when a record existed (then no entry either).
 */
export const restoreDeliveryScript = defineScript(
  "restore-delivery",
  `
--- @include "status-entry"
--- @include "packed-fields"
--- @include "delivery-record"

local key = ARGV[1] .. 'delivery:' .. ARGV[2]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
if ARGV[5] then
  local rec = unpackDelivery(ARGV[3])
  local failureReason = ''
  if rec[D.phase] == 'FAILED' then failureReason = rec[D.failureReason] end
  addStatusEntry(KEYS[2], ARGV[5], ARGV[2], rec[D.phase], rec[D.namespace], rec[D.webhook], rec[D.eventId],
    rec[D.attemptCount], failureReason, ARGV[6])
end
return 1
`,
);
