import { defineScript } from "./script.ts";

/**
 * Resets the idle time of pending entries, but only of those the consumer still owns: a plain
 * `XCLAIM … 0 JUSTID` would also take back an entry another consumer has claimed meanwhile (after
 * this one stalled), and two replicas would then make the same attempt at once.
 * KEYS: stream. ARGV: group, consumer, then the entry ids.
 * Returns the ids this consumer no longer owns (claimed by another, or acknowledged).
 */
export const renewClaimsScript = defineScript(
  "renew-claims",
  `
local group, consumer = ARGV[1], ARGV[2]
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local owned = redis.call('XPENDING', KEYS[1], group, id, id, 1, consumer)
  if owned[1] then
    redis.call('XCLAIM', KEYS[1], group, consumer, 0, id, 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
`,
);
