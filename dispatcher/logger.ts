import { type DestinationStream, type Logger, type LoggerOptions, pino, stdSerializers } from "pino";

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
    serializers: {
      // ioredis errors carry the failed command with its arguments (payloads, routing documents)
      err(error: Error) {
        const serialized = stdSerializers.err(error) as ReturnType<typeof stdSerializers.err> & {
          command?: unknown;
        };
        delete serialized.command;
        return serialized;
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
