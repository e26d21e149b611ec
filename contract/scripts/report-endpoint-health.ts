import { defineScript } from "./script.ts";

/**
 * Stores the endpoint health records a dispatcher replica reports (endpoint-health.ts), one hash
 * field per webhook. Replicas see a dead endpoint each from their own attempts: when the stored
 * record and the new one are both in a run of failures of the same webhook (same uid), the run
 * keeps the earlier start, so a replica that restarted (or just began attempting) does not make a
 * long outage look new. A record without a run (the last attempt succeeded) replaces it.
 * KEYS: the health hash. ARGV: field, JSON, field, JSON, … Returns how many were stored.
 */
export const reportEndpointHealthScript = defineScript(
  "report-endpoint-health",
  `
for i = 1, #ARGV, 2 do
  local field, json = ARGV[i], ARGV[i + 1]
  local incoming = cjson.decode(json)
  if type(incoming.firstFailureAt) == 'number' then
    local stored = redis.call('HGET', KEYS[1], field)
    if stored then
      local ok, previous = pcall(cjson.decode, stored)
      if ok and type(previous) == 'table' and previous.uid == incoming.uid
        and type(previous.firstFailureAt) == 'number' and previous.firstFailureAt < incoming.firstFailureAt then
        incoming.firstFailureAt = previous.firstFailureAt
        json = cjson.encode(incoming)
      end
    end
  end
  redis.call('HSET', KEYS[1], field, json)
end
return #ARGV / 2
`,
);
