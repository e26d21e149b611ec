import { defineScript } from "./script.ts";

/** How many honoured retry tokens a delivery remembers. */
export const REMEMBERED_RETRY_TOKENS = 20;

/**
 * FAILED → QUEUED with a fresh attempt budget, once per token.
 * KEYS: deliveries, status, logFailed.
 * ARGV: prefix, deliveryId, token, nowMs, nowIso, retentionMs, statusMaxLen, namespace ("" = any).
 * Returns "requeued" | "already-honoured" | "not-failed" | "not-found".
 */
export const requestRetryScript = defineScript(
  "request-retry",
  `
--- @include "status-entry"

local id, token = ARGV[2], ARGV[3]
local key = ARGV[1] .. 'delivery:' .. id
local cur = redis.call('HMGET', key, 'phase', 'retryTokens', 'version', 'cycle', 'namespace', 'webhook',
  'eventType', 'eventId', 'attemptCount')
if not cur[1] then return 'not-found' end
-- another namespace's delivery: as good as absent to this caller
if ARGV[8] ~= '' and cur[5] ~= ARGV[8] then return 'not-found' end
local tokens = {}
if cur[2] then tokens = cjson.decode(cur[2]) end
for _, honoured in ipairs(tokens) do
  if honoured == token then return 'already-honoured' end
end
if cur[1] ~= 'FAILED' then return 'not-failed' end
tokens[#tokens + 1] = token
while #tokens > ${REMEMBERED_RETRY_TOKENS} do table.remove(tokens, 1) end
redis.call('HSET', key, 'phase', 'QUEUED', 'cycle', tonumber(cur[4]) + 1, 'cycleAttempts', '0',
  'version', tonumber(cur[3]) + 1, 'lastRetryToken', token, 'retryTokens', cjson.encode(tokens),
  'updatedAt', ARGV[4])
redis.call('HDEL', key, 'failureReason', 'nextAttemptAt')
redis.call('PEXPIRE', key, ARGV[6])
redis.call('ZREM', KEYS[3], id)
redis.call('XADD', KEYS[1], '*', 'id', id)
addStatusEntry(KEYS[2], ARGV[7], id, 'QUEUED', cur[5], cur[6], cur[7], cur[8], cur[9], ARGV[5], nil)
return 'requeued'
`,
);
