import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";
import { maskSecrets, REDACTED, serializeError } from "../common/logging/serialize-error.ts";

export { maskSecrets, serializeError };

// The operator's logger. Errors can carry secrets (ioredis attaches every command's arguments
// to its errors: routing documents with whsec_ signing secrets and header values read from
// Secrets); the shared serializer drops them and masks secrets left in text.

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
