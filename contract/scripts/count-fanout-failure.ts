import { defineScript } from "./script.ts";

/**
 * Counts one more failed fan-out of a single ingest stream entry, unless the entry is no longer
 * pending in the group: then another loop or replica has settled it meanwhile (recorded it, or
 * moved it to the dead letters after its last failure), and counting again would start it over.
 * KEYS: events, the entry's failure counter. ARGV: group, entry id, counter TTL (ms).
 * Returns the failures so far, or 0 when the entry is settled.
 */
export const countFanoutFailureScript = defineScript(
  "count-fanout-failure",
  `
local id = ARGV[2]
if not redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1] then return 0 end
local failures = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return failures
`,
);
