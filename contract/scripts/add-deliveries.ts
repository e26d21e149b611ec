import { defineScript, type ScriptArg } from "./script.ts";

/** A delivery to add to an event that exists already (a replay's copy for another webhook). */
export interface NewDelivery {
  id: string;
  namespace: string;
  webhook: string;
  eventId: string;
  /** the packed record (packDelivery), QUEUED */
  record: string;
  /** the webhook is ordered: the delivery joins its queue (Keyspace.orderedQueue) */
  ordered: boolean;
}

/** Per delivery: "c" created, "e" a delivery with its id exists already (nothing done). */
export type AddDeliveryResult = "c" | "e";

/**
 * Adds deliveries of existing events, as the fan-out makes them (the "new-delivery" fragment:
 * record, log indexes, work or a place in the ordered queue, QUEUED status entry), each only if
 * no delivery has its id yet: ids are deterministic (replayCopyId), so a page done twice, or a
 * crash between this and the caller's own bookkeeping, creates nothing twice. The event record
 * (which the delivery takes its data from) lives at least as long as the new delivery.
 * KEYS: deliveries, status, logAll, logIndexes, archiveOpen, archiveAdopted: a delivery joins the
 * open set of the durable log store once the dispatchers archive this keyspace (the adopted marker
 * says so; the operator, which runs this script, has no setting of its own for it).
 * ARGV: prefix, nowMs, retentionMs, statusMaxLen, then 6 per delivery (see encodeNewDeliveries).
 * Returns one AddDeliveryResult character per delivery, as one string.
 */
export const addDeliveriesScript = defineScript(
  "add-deliveries",
  `
--- @include "status-entry"
--- @include "packed-fields"
--- @include "delivery-record"
--- @include "log-index"
--- @include "ordered-queue"
--- @include "new-delivery"

local prefix, now, retention, statusMaxLen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local logKeys = { logAll = KEYS[3], logIndexes = KEYS[4], deliveries = KEYS[1], status = KEYS[2],
  statusMaxLen = statusMaxLen }
if redis.call('EXISTS', KEYS[6]) == 1 then logKeys.archiveOpen = KEYS[5] end
local results = {}
for i = 1, (#ARGV - 4) / 6 do
  local at = 5 + (i - 1) * 6
  local id, ns, webhook, eventId, record, ordered = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3],
    ARGV[at + 4], ARGV[at + 5]
  if redis.call('EXISTS', prefix .. 'delivery:' .. id) == 1 then
    results[i] = 'e'
  else
    addDelivery(prefix, logKeys, ns, webhook, id, eventId, record, retention, now, ordered == '1', nil, nil, nil)
    keepEventFor(prefix, (unpackDelivery(record)), retention)
    results[i] = 'c'
  end
end
return table.concat(results)
`,
);

/** The deliveries as the script's flat ARGV tail: 6 values each. */
export function encodeNewDeliveries(deliveries: readonly NewDelivery[]): ScriptArg[] {
  const args: ScriptArg[] = [];
  for (const d of deliveries)
    args.push(d.id, d.namespace, d.webhook, d.eventId, d.record, d.ordered ? "1" : "");
  return args;
}
