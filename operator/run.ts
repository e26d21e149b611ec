import type { Logger } from "pino";
import type { CustomResourceParsers } from "./caches.ts";
import { loadSettings } from "./config.ts";
import { PooledKubeConfig } from "./controller/pooled-kube-config.ts";
import { createLogger } from "./logger.ts";
import { createOperator } from "./operator.ts";

// The operator process: settings from the environment, Kubernetes from KUBECONFIG or
// the Pod's ServiceAccount, then run until SIGTERM (see controller/manager.ts).

export interface RunOptions {
  /** Other parse hooks for the caches (the memory bench's variant that keeps payloads). */
  parsers?(logger: Logger): CustomResourceParsers;
  /** Said in the "operator started" line. */
  variant?: string;
}

export async function runOperator(options: RunOptions = {}): Promise<void> {
  const settings = loadSettings();
  const logger = createLogger({
    name: "operator",
    level: settings.logLevel,
    base: { identity: settings.identity },
  });
  const kubeConfig = new PooledKubeConfig();
  kubeConfig.loadFromDefault();

  const parsers = options.parsers?.(logger);
  const operator = createOperator(settings, kubeConfig, logger, parsers ? { parsers } : {});
  operator.manager.handleSignals();
  await operator.start();
  logger.info(
    { port: operator.manager.address()?.port, ...(options.variant ? { variant: options.variant } : {}) },
    "operator started",
  );
}
