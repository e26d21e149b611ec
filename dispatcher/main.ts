import { loadSettings } from "./config.ts";
import { startDispatcher } from "./dispatcher.ts";
import { createLogger } from "./logger.ts";

const settings = loadSettings();
const logger = createLogger(settings.logLevel);
const dispatcher = await startDispatcher(settings, logger);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    logger.info({ signal }, "shutdown requested");
    dispatcher.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}
