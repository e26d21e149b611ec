import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";

// The operator's logger. Errors can carry secrets: ioredis attaches every command's
// arguments to its errors (`err.command.args`: a routing document with whsec_ signing
// secrets and header values read from Secrets), and pino's default `err` serializer logs
// every enumerable property. The serializer here drops `command` (at any depth, causes
// included) and masks signing secrets and bearer tokens left in messages and stacks.

const REDACTED = "[REDACTED]";
const SECRET_TEXT = /whsec_[A-Za-z0-9+/=]*|\b(Bearer|Basic)\s+[^\s"',;]+/gi;

/** Object paths never logged as they are (pino redaction; `*` is one level). */
export const REDACT_PATHS: readonly string[] = [
  "authorization",
  "*.authorization",
  "*.Authorization",
  "headers.authorization",
  "*.headers.authorization",
  "*.headers.Authorization",
  "signingSecrets",
  "*.signingSecrets",
  "routing.signingSecrets",
  "routing.webhooks[*].headers",
];

export function createLogger(
  options: Pick<LoggerOptions, "name" | "level" | "base" | "enabled"> = {},
  destination?: DestinationStream,
): Logger {
  const settings: LoggerOptions = {
    name: "operator",
    ...options,
    serializers: { err: serializeError },
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
  };
  return destination ? pino(settings, destination) : pino(settings);
}

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
    if (key === "command" || key === "args" || key === "argv") continue;
    out[key] = scrub(item, seen);
  }
  return out;
}
