import { type Logger, pino } from "pino";

/**
 * JSON logs. Secrets never reach a log call by design (signatures and tokens are not passed to
 * the logger); the redaction is a second line of defence for headers and routing documents.
 */
export function createLogger(level: string, name = "dispatcher"): Logger {
  return pino({
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
  });
}
