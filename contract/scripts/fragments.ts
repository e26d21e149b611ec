// Lua shared by several scripts, spliced in where a script says `--- @include "<name>"` (BullMQ
// style): written once, and each script stays one self-contained EVAL with its own SHA.

/**
 * Appends one entry to the status stream (see Keyspace.status and StatusEntrySchema): the only
 * place that spells its fields. `failureReason` only on FAILED (nil otherwise).
 */
const STATUS_ENTRY = `
local function addStatusEntry(stream, maxLen, deliveryId, phase, namespace, webhook, eventType, eventId,
    attempts, at, failureReason)
  if failureReason then
    redis.call('XADD', stream, 'MAXLEN', '~', maxLen, '*', 'deliveryId', deliveryId, 'phase', phase,
      'namespace', namespace, 'webhook', webhook, 'eventType', eventType, 'eventId', eventId,
      'attempts', attempts, 'at', at, 'failureReason', failureReason)
  else
    redis.call('XADD', stream, 'MAXLEN', '~', maxLen, '*', 'deliveryId', deliveryId, 'phase', phase,
      'namespace', namespace, 'webhook', webhook, 'eventType', eventType, 'eventId', eventId,
      'attempts', attempts, 'at', at)
  end
end
`.trim();

export const LUA_FRAGMENTS: Readonly<Record<string, string>> = {
  "status-entry": STATUS_ENTRY,
};

/** The script with every `--- @include "<name>"` line replaced by that fragment. */
export function assembleLua(lua: string): string {
  return lua.replace(/^--- @include "([\w-]+)"$/gm, (_line, name: string) => {
    const fragment = LUA_FRAGMENTS[name];
    if (fragment === undefined) throw new Error(`unknown Lua fragment ${JSON.stringify(name)}`);
    return fragment;
  });
}
