// A minimal operator process for manager.e2e.test.ts: one controller on the ConfigMaps of
// $NAMESPACE whose reconcile takes $RECONCILE_MS, leader election on a short Lease, and
// the manager's signal handling. Logs JSON lines on stdout.
import { setTimeout as sleep } from "node:timers/promises";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { Manager } from "../manager.ts";

const namespace = process.env.NAMESPACE ?? "default";
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(process.env.KUBECONFIG ?? "");
const log = pino({ level: "info" });

const manager = new Manager({
  kubeConfig,
  logger: log,
  server: { host: "127.0.0.1", port: 0 },
  leaderElection: {
    namespace,
    name: "manager-process",
    identity: process.env.IDENTITY ?? "manager-process",
    leaseDurationMs: 2_000,
    renewDeadlineMs: 1_500,
    retryPeriodMs: 300,
  },
});
const configMaps = manager.informer({ group: "", version: "v1", plural: "configmaps", namespace });
manager.controller({
  name: "configmaps",
  for: configMaps,
  reconcile: async ({ key }) => {
    log.info({ key }, "reconcile started");
    await sleep(Number(process.env.RECONCILE_MS ?? "0"));
    log.info({ key }, "reconcile finished");
  },
});
manager.handleSignals();
await manager.start();
log.info({ port: manager.address()?.port }, "manager started");
