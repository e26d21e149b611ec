import { defineScript } from "./script.ts";

/**
 * Stores the endpoint health records a dispatcher replica reports (endpoint-health.ts), one hash
 * field per webhook. Replicas see a dead endpoint each from their own attempts: when the stored
 * record and the new one are both in a run of failures of the same webhook (same uid), the run
 * keeps the earlier start, so a replica that restarted (or just began attempting) does not make a
 * long outage look new; but no run starts before the last success any replica reported (a replica
 * that saw no success of its own would otherwise report a run from before it). A record without a
 * run (the last attempt succeeded) replaces it.
 * KEYS: the health hash. ARGV: field, JSON, field, JSON, … Returns how many were stored.
 */
export const reportEndpointHealthScript = defineScript(
  "report-endpoint-health",
  `
for i = 1, #ARGV, 2 do
  local field, json = ARGV[i], ARGV[i + 1]
  local incoming = cjson.decode(json)
  local stored = redis.call('HGET', KEYS[1], field)
  if stored then
    local ok, previous = pcall(cjson.decode, stored)
    if ok and type(previous) == 'table' and previous.uid == incoming.uid then
      local changed = false
      local success = previous.lastSuccessAt
      if type(success) == 'number' and (type(incoming.lastSuccessAt) ~= 'number' or incoming.lastSuccessAt < success) then
        incoming.lastSuccessAt = success
        changed = true
      end
      if type(incoming.firstFailureAt) == 'number' then
        if type(previous.firstFailureAt) == 'number' and previous.firstFailureAt < incoming.firstFailureAt then
          incoming.firstFailureAt = previous.firstFailureAt
          changed = true
        end
        if type(incoming.lastSuccessAt) == 'number' and incoming.firstFailureAt < incoming.lastSuccessAt then
          incoming.firstFailureAt = incoming.lastSuccessAt
          changed = true
        end
      end
      if changed then json = cjson.encode(incoming) end
    end
  end
  redis.call('HSET', KEYS[1], field, json)
end
return #ARGV / 2
`,
);
