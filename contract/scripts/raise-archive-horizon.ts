import { defineScript } from "./script.ts";

/**
 * Raises the archive horizon (Keyspace.archiveHorizon) to ARGV[1] unless it is higher already:
 * it only ever moves forward, so that replicas computing it at different moments never let the
 * indexes and the archive's listing disagree on where the one hands over to the other.
 * KEYS: archiveHorizon. Returns the horizon in force.
 */
export const raiseArchiveHorizonScript = defineScript(
  "raise-archive-horizon",
  `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local proposed = tonumber(ARGV[1])
if proposed > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return tostring(current)
`,
);
