import {
  DELIVERY_FORMAT,
  EVENT_FORMAT,
  FIELD_ESCAPES,
  MAX_KEPT_ATTEMPTS,
  STORED_DELIVERY_FIELDS,
  STORED_EVENT_FIELDS,
} from "../records.ts";

// Lua shared by several scripts, spliced in where a script says `--- @include "<name>"` (BullMQ
// style): written once, and each script stays one self-contained EVAL with its own SHA. A fragment
// may use the ones included before it.

/**
 * Appends one entry to the status stream (see Keyspace.status and StatusEntrySchema): the only
 * place that spells its fields. The same fields in the same order every time, so that Redis
 * stores their names once per stream node: `failureReason` is empty but on FAILED, and `webhook`
 * is empty when the delivery id says it (`<webhook>-<20 characters>`, delivery-id.ts). Only an
 * entry of format 1 moved over, or one for a record brought back from the durable log store, has
 * one more, `at` (ISO; otherwise the time is the entry id's).
 */
const STATUS_ENTRY = `
local function addStatusEntry(stream, maxLen, deliveryId, phase, namespace, webhook, eventId, attempts,
    failureReason, at)
  if string.sub(deliveryId, 1, -22) == webhook and string.sub(deliveryId, -21, -21) == '-' then webhook = '' end
  local entry = { 'XADD', stream, 'MAXLEN', '~', maxLen, '*', 'deliveryId', deliveryId, 'phase', phase,
    'namespace', namespace, 'webhook', webhook, 'eventId', eventId, 'attempts', attempts,
    'failureReason', failureReason or '' }
  if at then
    entry[#entry + 1] = 'at'
    entry[#entry + 1] = at
  end
  redis.call(unpack(entry))
end
`.trim();

/** A Lua table literal `{ name = position, … }` of a packed line's fields (records.ts). */
function fieldPositions(fields: readonly string[]): string {
  return `{ ${fields.map((field, i) => `${field} = ${i + 1}`).join(", ")} }`;
}

/** A Lua string literal of one character. */
function luaChar(char: string): string {
  return char === "\t" ? "'\\t'" : char === "\n" ? "'\\n'" : `'${char}'`;
}

/**
 * Packed lines (records.ts): splitting on a separator, and the escaping of free text that only
 * the rewrite of a format 1 hash needs here (JavaScript escapes everything else it passes in).
 */
const PACKED_FIELDS = `
local FIELD_ESCAPES = { ${Object.entries(FIELD_ESCAPES)
  .map(([char, escaped]) => `[${luaChar(char)}] = '${escaped}'`)
  .join(", ")} }
local function escapeField(value)
  return (string.gsub(value, '[%%\\t\\n,]', FIELD_ESCAPES))
end

-- every field between separators, empty ones included
local function splitOn(text, separator)
  local fields, start = {}, 1
  while true do
    local at = string.find(text, separator, start, true)
    if not at then
      fields[#fields + 1] = string.sub(text, start)
      return fields
    end
    fields[#fields + 1] = string.sub(text, start, at - 1)
    start = at + 1
  end
end

local function splitList(text)
  if text == '' then return {} end
  return splitOn(text, ',')
end

-- a packed record's first line as its fields, and the rest of the value ('' or from its '\\n')
local function splitRecord(value)
  local newline = string.find(value, '\\n', 1, true)
  if not newline then return splitOn(value, '\\t'), '' end
  return splitOn(string.sub(value, 1, newline - 1), '\\t'), string.sub(value, newline)
end
`.trim();

/**
 * Delivery records (StoredDeliverySchema): `D.<field>` is a field's position in the first line.
 * `loadDelivery` reads either format and gives the packed one (a format 1 hash is mapped field by
 * field, its payload kept inline); `saveDelivery` always writes the packed one.
 */
const DELIVERY_RECORD = `
local DELIVERY_FORMAT = '${DELIVERY_FORMAT}'
local D = ${fieldPositions(STORED_DELIVERY_FIELDS)}
local DELIVERY_FIELD_COUNT = ${STORED_DELIVERY_FIELDS.length}
local MAX_KEPT_ATTEMPTS = ${MAX_KEPT_ATTEMPTS}

local function legacyDelivery(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  local attempts = cjson.decode(h.attempts or '[]')
  local tokens = {}
  if h.retryTokens then
    tokens = cjson.decode(h.retryTokens)
  elseif h.lastRetryToken and h.lastRetryToken ~= '' then
    tokens = { h.lastRetryToken }
  end
  for i, token in ipairs(tokens) do tokens[i] = escapeField(token) end
  local rec = {}
  for i = 1, DELIVERY_FIELD_COUNT do rec[i] = '' end
  rec[D.format] = DELIVERY_FORMAT
  rec[D.phase] = h.phase
  rec[D.version] = h.version
  rec[D.attemptCount] = h.attemptCount or tostring(#attempts)
  rec[D.maxAttempts] = h.maxAttempts
  rec[D.cycle] = h.cycle
  rec[D.cycleAttempts] = h.cycleAttempts
  rec[D.createdAt] = h.createdAt
  rec[D.updatedAt] = h.updatedAt
  rec[D.nextAttemptAt] = h.nextAttemptAt or ''
  rec[D.failureReason] = h.failureReason or ''
  rec[D.eventId] = escapeField(h.eventId)
  rec[D.namespace] = escapeField(h.namespace)
  rec[D.webhook] = escapeField(h.webhook)
  rec[D.webhookUid] = escapeField(h.webhookUid or '')
  rec[D.eventType] = h.eventType
  rec[D.url] = escapeField(h.url)
  rec[D.routingRevision] = h.routingRevision or ''
  rec[D.retryTokens] = table.concat(tokens, ',')
  rec[D.mirrorError] = escapeField(h.mirrorError or '')
  rec[D.occurredAt] = escapeField(h.occurredAt)
  rec[D.ingestedAt] = h.ingestedAt
  rec[D.payload] = escapeField(h.payload)
  local lines = {}
  for i = math.max(1, #attempts - MAX_KEPT_ATTEMPTS + 1), #attempts do
    lines[#lines + 1] = '\\n' .. cjson.encode(attempts[i])
  end
  return rec, table.concat(lines)
end

-- a packed delivery's first-line fields (every one: those left out at its end are empty) and its
-- attempt lines ('' or '\\n…')
local function unpackDelivery(value)
  local rec, attempts = splitRecord(value)
  for i = #rec + 1, DELIVERY_FIELD_COUNT do rec[i] = '' end
  return rec, attempts
end

-- either format, as unpackDelivery gives it; nil when there is no record. A GET first: every
-- record is packed but those of format 1 (a hash: GET refuses it, then TYPE says so), and a TYPE
-- per read was one command per delivery more
local function loadDelivery(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' then
    if redis.call('TYPE', key).ok == 'hash' then return legacyDelivery(key) end
    return nil
  end
  if not value then return nil end
  return unpackDelivery(value)
end

-- writes the packed form, empty fields at the end of the first line left out
local function saveDelivery(key, rec, attempts)
  local last = DELIVERY_FIELD_COUNT
  while last > 1 and rec[last] == '' do last = last - 1 end
  redis.call('SET', key, table.concat(rec, '\\t', 1, last) .. attempts, 'KEEPTTL')
end

-- the attempt lines with one more, the oldest dropped beyond MAX_KEPT_ATTEMPTS
local function appendAttempt(attempts, attempt)
  attempts = attempts .. '\\n' .. attempt
  local _, kept = string.gsub(attempts, '\\n', '')
  while kept > MAX_KEPT_ATTEMPTS do
    local second = string.find(attempts, '\\n', 2, true)
    attempts = string.sub(attempts, second)
    kept = kept - 1
  end
  return attempts
end

-- the phase alone, from the first bytes of the record (nil when there is none); GETRANGE first,
-- as loadDelivery does (a missing key reads as '')
local function deliveryPhase(key)
  local head = redis.pcall('GETRANGE', key, 0, 31)
  if type(head) == 'table' then
    if redis.call('TYPE', key).ok == 'hash' then return redis.call('HGET', key, 'phase') end
    return nil
  end
  if head == '' then return nil end
  return splitOn(head, '\\t')[D.phase]
end

local function referencesEvent(rec)
  return rec[D.data] == '' and rec[D.payload] == ''
end

local function eventKeyOf(prefix, rec)
  return prefix .. 'event:' .. rec[D.namespace] .. ':' .. rec[D.eventId]
end

-- the event record lives at least as long as a delivery that takes its payload from it
local function keepEventFor(prefix, rec, retention)
  if not referencesEvent(rec) then return end
  local key = eventKeyOf(prefix, rec)
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl < tonumber(retention) then redis.call('PEXPIRE', key, retention) end
end
`.trim();

/** Event records (StoredEventSchema): `E.<field>` is a field's position in the first line. */
const EVENT_RECORD = `
local EVENT_FORMAT = '${EVENT_FORMAT}'
local E = ${fieldPositions(STORED_EVENT_FIELDS)}
`.trim();

/**
 * Event log indexes (Keyspace.logAll…): streams whose entry ids are the deliveries' creation
 * times, `<createdAt>-<n>`, kept increasing when replicas' clocks disagree (an id at or below the
 * stream's last one takes the last one's time); ids of the same index are looked up once per call.
 */
const LOG_INDEX = `
local lastIndexIds = {}
local function addToIndex(key, deliveryId, createdAt)
  local last = lastIndexIds[key]
  if last == nil then
    local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
    last = top and top[1] or false
  end
  local ms, n = tonumber(createdAt), 0
  if last then
    local dash = string.find(last, '-', 1, true)
    local lastMs = tonumber(string.sub(last, 1, dash - 1))
    if lastMs >= ms then
      ms = lastMs
      n = tonumber(string.sub(last, dash + 1)) + 1
    end
  end
  local id = redis.pcall('XADD', key, string.format('%d-%d', ms, n), 'd', deliveryId)
  -- below the last id the stream generated (its entries trimmed away meanwhile): Redis picks one
  if type(id) == 'table' then id = redis.call('XADD', key, '*', 'd', deliveryId) end
  lastIndexIds[key] = id
end
`.trim();

/**
 * Ordered webhooks (Keyspace.orderedQueue): one list of QUEUED delivery ids per webhook, in
 * fan-out order, of which only the head has work. Needs "delivery-record" (deliveryPhase).
 */
const ORDERED_QUEUE = `
local function orderedQueueKey(prefix, namespace, webhook)
  return prefix .. 'ordered:' .. namespace .. ':' .. webhook
end

-- appends a delivery to its webhook's queue; true when it is the head (its work goes out now)
local function enqueueOrdered(prefix, namespace, webhook, id)
  local key = orderedQueueKey(prefix, namespace, webhook)
  if redis.call('RPUSH', key, id) > 1 then return false end
  redis.call('SADD', prefix .. 'ordered-queues', key)
  return true
end

-- the delivery id is SENT or FAILED: it leaves the queue and, if it was the head, the next
-- one still QUEUED becomes the head and its work is queued (ids whose record is no longer QUEUED
-- or gone are dropped on the way)
local function advanceOrderedQueue(prefix, workStream, key, id)
  if redis.call('LINDEX', key, 0) ~= id then
    redis.call('LREM', key, 1, id)
    return
  end
  redis.call('LPOP', key)
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head then
      redis.call('SREM', prefix .. 'ordered-queues', key)
      return
    end
    if deliveryPhase(prefix .. 'delivery:' .. head) == 'QUEUED' then
      redis.call('XADD', workStream, '*', 'id', head)
      return
    end
    redis.call('LPOP', key)
  end
end

local function advanceOrdered(prefix, workStream, namespace, webhook, id)
  advanceOrderedQueue(prefix, workStream, orderedQueueKey(prefix, namespace, webhook), id)
end
`.trim();

/**
 * A new delivery (fan-out, or a replay's copy for another webhook): its record, its entries in
 * the event log indexes, its work (for an ordered webhook only as the head of its queue: the
 * others wait their turn, settle-deliveries queues the next one's work) and its QUEUED status
 * entry. Needs "status-entry", "log-index" and "ordered-queue".
 */
const NEW_DELIVERY = `
-- the indexes this call has registered already (the set of index names maintenance trims)
local registeredIndexes = {}

-- k: logAll, logIndexes, deliveries (the work queue), status, statusMaxLen, and archiveOpen when
-- the dispatchers archive completed deliveries (the open set, by creation time). work, payload,
-- revision: a first attempt's work entry fields (a, p, r); nil: the entry is {id} only and the
-- worker reads the record
local function addDelivery(prefix, k, namespace, webhook, id, eventId, record, retention, now, ordered,
    work, payload, revision)
  redis.call('SET', prefix .. 'delivery:' .. id, record, 'PX', retention)
  local nsIndex = prefix .. 'logs:ns:' .. namespace
  local webhookIndex = nsIndex .. ':webhook:' .. webhook
  addToIndex(k.logAll, id, now)
  if k.archiveOpen then redis.call('ZADD', k.archiveOpen, now, id) end
  addToIndex(nsIndex, id, now)
  addToIndex(webhookIndex, id, now)
  if not registeredIndexes[webhookIndex] then
    redis.call('SADD', k.logIndexes, nsIndex, webhookIndex)
    registeredIndexes[webhookIndex] = true
  end
  if not ordered or enqueueOrdered(prefix, namespace, webhook, id) then
    if work then
      redis.call('XADD', k.deliveries, '*', 'id', id, 'a', work, 'p', payload, 'r', revision)
    else
      redis.call('XADD', k.deliveries, '*', 'id', id)
    end
  end
  addStatusEntry(k.status, k.statusMaxLen, id, 'QUEUED', namespace, webhook, eventId, '0', nil, nil)
end
`.trim();

export const LUA_FRAGMENTS: Readonly<Record<string, string>> = {
  "status-entry": STATUS_ENTRY,
  "packed-fields": PACKED_FIELDS,
  "delivery-record": DELIVERY_RECORD,
  "event-record": EVENT_RECORD,
  "log-index": LOG_INDEX,
  "ordered-queue": ORDERED_QUEUE,
  "new-delivery": NEW_DELIVERY,
};

/** The script with every `--- @include "<name>"` line replaced by that fragment. */
export function assembleLua(lua: string): string {
  return lua.replace(/^--- @include "([\w-]+)"$/gm, (_line, name: string) => {
    const fragment = LUA_FRAGMENTS[name];
    if (fragment === undefined) throw new Error(`unknown Lua fragment ${JSON.stringify(name)}`);
    return fragment;
  });
}
