import { defineScript } from "./script.ts";

/**
 * Drops the entries of event log indexes (streams, Keyspace.logAll…) created before the horizon,
 * and deletes an index left empty, with its name in the registry — atomically, so that a fan-out
 * adding to it meanwhile is never lost with it.
 * KEYS: the registry of per-namespace indexes (logIndexes). ARGV: horizon (epoch ms), index keys….
 * Returns how many of them were deleted.
 */
export const trimLogIndexesScript = defineScript(
  "trim-log-indexes",
  `
local deleted = 0
for i = 2, #ARGV do
  local index = ARGV[i]
  redis.call('XTRIM', index, 'MINID', ARGV[1])
  if redis.call('XLEN', index) == 0 then
    redis.call('DEL', index)
    redis.call('SREM', KEYS[1], index)
    deleted = deleted + 1
  end
end
return deleted
`,
);
