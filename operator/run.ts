import { loadSettings } from "./config.ts";
import { PooledKubeConfig } from "./controller/pooled-kube-config.ts";
import { createLogger } from "./logger.ts";
import { createOperator } from "./operator.ts";

// The operator process: settings from the environment, Kubernetes from KUBECONFIG or
// the Pod's ServiceAccount, then run until SIGTERM (see controller/manager.ts).

const settings = loadSettings();
const logger = createLogger({
  name: "operator",
  level: settings.logLevel,
  base: { identity: settings.identity },
});
const kubeConfig = new PooledKubeConfig();
kubeConfig.loadFromDefault();

const operator = createOperator(settings, kubeConfig, logger);
operator.manager.handleSignals();
await operator.start();
logger.info({ port: operator.manager.address()?.port }, "operator started");
