import { loadSettings } from "./config.ts";
import { type Dispatcher, startDispatcher } from "./dispatcher.ts";
import { createLogger } from "./logger.ts";

const settings = loadSettings();
const logger = createLogger(settings.logLevel);
let dispatcher: Dispatcher | undefined;

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    logger.info({ signal }, "shutdown requested");
    // still starting (e.g. waiting for Redis): nothing is in flight yet
    if (dispatcher === undefined) process.exit(0);
    dispatcher.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}

dispatcher = await startDispatcher(settings, logger);
