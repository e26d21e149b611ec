import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";
import { serializeError } from "../common/logging/serialize-error.ts";

/**
 * JSON logs. Secrets never reach a log call by design (signatures and tokens are not passed to
 * the logger); the redaction is a second line of defence for headers and routing documents.
 */
export function createLogger(level: string, name = "dispatcher", destination?: DestinationStream): Logger {
  const options: LoggerOptions<never, boolean> = {
    name,
    level,
    redact: {
      paths: [
        "signingSecrets",
        "*.signingSecrets",
        "headers.authorization",
        "*.headers.authorization",
        'headers["webhook-signature"]',
        '*.headers["webhook-signature"]',
        "req.headers.authorization",
      ],
      censor: "[redacted]",
    },
    // ioredis errors carry the failed command with its arguments (payloads, webhook headers,
    // routing documents): dropped at any depth, and secrets left in text are masked
    serializers: { err: serializeError },
  };
  return destination ? pino(options, destination) : pino(options);
}
