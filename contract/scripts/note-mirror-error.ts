import { defineScript } from "./script.ts";

/**
 * Notes on an existing delivery record why the operator could not show it as a WebhookEvent (the
 * API server refused the object), so the event log says it; a vanished record is not re-created.
 * KEYS: the delivery's record. ARGV: the message, escaped (escapeField). A record of format 1 (a
 * hash) is rewritten packed.
 * Returns 1 when noted, 0 when the record is gone.
 */
export const noteMirrorErrorScript = defineScript(
  "note-mirror-error",
  `
--- @include "packed-fields"
--- @include "delivery-record"

local rec, attempts = loadDelivery(KEYS[1])
if not rec then return 0 end
rec[D.mirrorError] = ARGV[1]
saveDelivery(KEYS[1], rec, attempts)
return 1
`,
);
