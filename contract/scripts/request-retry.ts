import { defineScript } from "./script.ts";

/** How many honoured retry tokens a delivery remembers. */
export const REMEMBERED_RETRY_TOKENS = 20;

/**
 * FAILED → QUEUED with a fresh attempt budget, once per token. A delivery of an ordered webhook
 * joins the tail of its queue (Keyspace.orderedQueue) rather than being attempted at once.
 * KEYS: deliveries, status, logFailed.
 * ARGV: prefix, deliveryId, token (escaped: escapeField), nowMs, retentionMs, statusMaxLen,
 * namespace ("" = any), phases it may requeue from (comma-separated; absent or "" = FAILED; a
 * replay may also requeue SENT ones). A record of format 1 (a hash) is rewritten packed.
 * Returns "requeued" | "already-honoured" | "not-failed" (not in one of those phases) | "not-found".
 */
export const requestRetryScript = defineScript(
  "request-retry",
  `
--- @include "status-entry"
--- @include "packed-fields"
--- @include "delivery-record"
--- @include "ordered-queue"

local prefix, id, token = ARGV[1], ARGV[2], ARGV[3]
local key = prefix .. 'delivery:' .. id
local rec, attempts = loadDelivery(key)
if not rec then return 'not-found' end
-- another namespace's delivery: as good as absent to this caller
if ARGV[7] ~= '' and rec[D.namespace] ~= ARGV[7] then return 'not-found' end
local tokens = splitList(rec[D.retryTokens])
for _, honoured in ipairs(tokens) do
  if honoured == token then return 'already-honoured' end
end
local phases = (ARGV[8] == nil or ARGV[8] == '') and 'FAILED' or ARGV[8]
if rec[D.phase] == 'QUEUED' or not string.find(',' .. phases .. ',', ',' .. rec[D.phase] .. ',', 1, true) then
  return 'not-failed'
end
tokens[#tokens + 1] = token
while #tokens > ${REMEMBERED_RETRY_TOKENS} do table.remove(tokens, 1) end
rec[D.phase] = 'QUEUED'
rec[D.cycle] = tostring(tonumber(rec[D.cycle]) + 1)
rec[D.cycleAttempts] = '0'
rec[D.version] = tostring(tonumber(rec[D.version]) + 1)
rec[D.retryTokens] = table.concat(tokens, ',')
rec[D.updatedAt] = ARGV[4]
rec[D.failureReason] = ''
rec[D.nextAttemptAt] = ''
saveDelivery(key, rec, attempts)
redis.call('PEXPIRE', key, ARGV[5])
keepEventFor(prefix, rec, ARGV[5])
redis.call('ZREM', KEYS[3], id)
-- a delivery of an ordered webhook joins the tail of its queue: it is attempted after the ones
-- already waiting (at once when none is)
if rec[D.ordered] ~= '1' or enqueueOrdered(prefix, rec[D.namespace], rec[D.webhook], id) then
  redis.call('XADD', KEYS[1], '*', 'id', id)
end
addStatusEntry(KEYS[2], ARGV[6], id, 'QUEUED', rec[D.namespace], rec[D.webhook], rec[D.eventId],
  rec[D.attemptCount], nil, nil)
return 'requeued'
`,
);
