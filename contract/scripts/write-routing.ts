import { defineScript } from "./script.ts";

/**
 * Sets (or, with an empty JSON, removes) one namespace's routing, bumps the routing revision and
 * announces it, in one step, so a dispatcher that sees the new revision also sees the new routing.
 * KEYS: routing, routingRevision. ARGV: namespace, routing JSON or "", channel. Returns the revision.
 */
export const writeRoutingScript = defineScript(
  "write-routing",
  `
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local revision = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], revision)
return revision
`,
);
