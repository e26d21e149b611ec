import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { type E2eWorld, INGEST_TOKEN, type OperatorProcess, setupWorld } from "../e2e/harness.ts";
import { type ControlPlane, type Restart, startControlPlane } from "../env/control-plane.ts";
import { installCrds } from "../env/install-crds.ts";
import { useKubeconfig } from "../env/kubectl.ts";
import { BULK_RATE, MIRRORED_RATE, setupAccounts, stopAndCount, targets } from "./e2e-load.ts";
import { faultRow, reportRow } from "./fault-table.ts";
import { type LoadReceiver, seconds, startLoad, startLoadReceiver } from "./load.ts";

// The API server, then etcd, crash (SIGKILL) and come back mid-load. This file runs its own
// kube-apiserver + etcd (test/env/control-plane.ts), so the files beside it never see the outage.
// The design: deliveries do not need Kubernetes and go on; WebhookEvents catch up afterwards.
//
// The operator runs with the production Lease timings (renew deadline 10 s). An outage longer than
// that makes the leader give up its Lease and exit, as client-go's do, to be restarted by its Pod:
// a supervisor here plays the kubelet (restartPolicy: Always), and the row says when it had to.

const PRODUCTION_LEASE = {
  OPERATOR_LEASE_DURATION_MS: "15000",
  OPERATOR_RENEW_DEADLINE_MS: "10000",
  OPERATOR_RETRY_PERIOD_MS: "2000",
  OPERATOR_LOG_LEVEL: "info",
};
const DOWN_MS = 1_000;

let controlPlane: ControlPlane | undefined;
let world: E2eWorld;
let receiver: LoadReceiver;
/** When the supervisor had to restart the operator (it exited). */
const operatorRestarts: number[] = [];
let stopping = false;

/** Starts the operator again whenever it exits, as its Pod's restartPolicy would. */
function supervise(operator: OperatorProcess): void {
  operator.proc.child.once("exit", () => {
    if (stopping) return;
    operatorRestarts.push(Date.now());
    void (async () => {
      while (!stopping) {
        try {
          supervise(await world.startOperator("cp-operator", PRODUCTION_LEASE));
          return;
        } catch {
          await sleep(1_000); // as a crash-looping container backs off
        }
      }
    })();
  });
}

beforeAll(async () => {
  controlPlane = await startControlPlane({ assetsDir: inject("assetsDir") });
  await installCrds(join(inject("assetsDir"), "kubectl"), controlPlane.kubeconfigPath);
  useKubeconfig(controlPlane.kubeconfigPath);
  world = await setupWorld("faults-cp", ["bulk", "mirrored"]);
  receiver = await startLoadReceiver();
  supervise(await world.startOperator("cp-operator", PRODUCTION_LEASE));
  await setupAccounts(world, receiver);
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  stopping = true;
  await receiver?.close();
  await world?.teardown();
  useKubeconfig(undefined);
  await controlPlane?.stop();
});

async function underLoad(
  order: number,
  fault: string,
  task: Parameters<typeof reportRow>[0],
  injectFault: () => Promise<Restart>,
) {
  const keys = keyspace(world.keyTag);
  receiver.reset();
  const restartsBefore = operatorRestarts.length;
  const load = startLoad({
    urls: [world.dispatcher.url],
    token: INGEST_TOKEN,
    eventsPerSecond: BULK_RATE + MIRRORED_RATE,
    targets: targets(world),
  });
  await sleep(2_000);
  const restart = await injectFault();
  await sleep(3_000);
  const { result, counts, caughtUpAt, mirroredCount } = await stopAndCount(world, keys, load, receiver);
  const restarted = operatorRestarts.length - restartsBefore;
  const duringOutage = [...receiver.copies().values()].filter((copies) =>
    copies.some((copy) => copy.at > restart.killedAt && copy.at < restart.readyAt),
  ).length;
  reportRow(
    task,
    faultRow(
      order,
      fault,
      result,
      counts,
      "0",
      `down ${seconds(restart.readyAt - restart.killedAt)}, ${duringOutage} delivered meanwhile; ${mirroredCount} WebhookEvents caught up ${seconds(caughtUpAt - restart.readyAt)} after${restarted ? `; operator lost its Lease, restarted ${restarted}×` : ""}`,
    ),
  );

  expect(counts.deliveries).toBeGreaterThan(500);
  expect(counts.lostIds).toEqual([]);
  expect(counts.failed).toBe(0);
  expect(counts.unexpected).toEqual([]);
  expect(counts.differing).toEqual([]);
  // the data plane did not wait for Kubernetes
  expect(result.retried).toBe(0);
  expect(duringOutage).toBeGreaterThan(50);
  expect(mirroredCount).toBeGreaterThan(50);
}

describe("the Kubernetes control plane restarts mid-load", () => {
  it("kube-apiserver kill -9 and restart: deliveries go on, WebhookEvents catch up", async ({ task }) => {
    await underLoad(6, "kube-apiserver `kill -9` + restart", task, () =>
      controlPlane!.restartApiServer({ downMs: DOWN_MS }),
    );
  }, 120_000);

  it("etcd kill -9 and restart: deliveries go on, WebhookEvents catch up", async ({ task }) => {
    await underLoad(7, "etcd `kill -9` + restart", task, () =>
      controlPlane!.restartEtcd({ downMs: DOWN_MS }),
    );
  }, 120_000);
});
