import { defineScript } from "./script.ts";

/**
 * Brings a delivery that lives only in the durable log store back into Redis: its packed record
 * (payload inline) is written unless a record with that id exists, for the TTL given (the retention
 * to retry it; the hot window to answer the mirror's status request).
 * KEYS: deliveries (unread: the partition's slot). ARGV: prefix, id, packed record, ttlMs.
 * Returns 1 when written, 0 when a record existed.
 */
export const restoreDeliveryScript = defineScript(
  "restore-delivery",
  `
local key = ARGV[1] .. 'delivery:' .. ARGV[2]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
return 1
`,
);
