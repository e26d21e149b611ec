import { pino } from "pino";

// Errors can carry secrets: ioredis attaches every command's arguments to its errors
// (`err.command.args`: payloads, webhook headers, routing documents with whsec_ signing
// secrets), and pino's default `err` serializer logs every enumerable property. The
// serializer here drops `command`, `args` and `argv` at any depth (causes included) and
// masks signing secrets and bearer/basic credentials left in messages and stacks.
// Shared by the dispatcher's and the operator's loggers.

export const REDACTED = "[REDACTED]";
const SECRET_TEXT = /whsec_[A-Za-z0-9+/=]*|\b(Bearer|Basic)\s+[^\s"',;]+/gi;
const DROPPED_KEYS = new Set(["command", "args", "argv"]);

/** pino's error serializer without the command arguments and with secrets masked. */
export function serializeError(err: unknown): unknown {
  const serialized: unknown = err instanceof Error ? pino.stdSerializers.err(err) : err;
  return scrub(serialized, new WeakSet());
}

/** Masks signing secrets and bearer/basic credentials in free text. */
export function maskSecrets(text: string): string {
  return text.replace(SECRET_TEXT, (_match, scheme: string | undefined) =>
    scheme ? `${scheme} ${REDACTED}` : `whsec_${REDACTED}`,
  );
}

function scrub(value: unknown, seen: WeakSet<object>): unknown {
  if (typeof value === "string") return maskSecrets(value);
  if (typeof value !== "object" || value === null) return value;
  if (seen.has(value)) return "[Circular]";
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => scrub(item, seen));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (DROPPED_KEYS.has(key)) continue;
    out[key] = scrub(item, seen);
  }
  return out;
}
