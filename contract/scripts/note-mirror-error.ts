import { defineScript } from "./script.ts";

/**
 * Notes on an existing delivery record why the operator could not show it as a WebhookEvent (the
 * API server refused the object), so the event log says it; a vanished record is not re-created.
 * KEYS: the delivery's record. ARGV: the message.
 * Returns 1 when noted, 0 when the record is gone.
 */
export const noteMirrorErrorScript = defineScript(
  "note-mirror-error",
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'mirrorError', ARGV[1])
return 1
`,
);
