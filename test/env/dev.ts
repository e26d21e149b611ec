// `make dev`: the whole product on this machine, one command. Without KUBECONFIG and
// REDIS_URL it starts the local control plane (the tests' kube-apiserver + etcd) and a
// redis-server; with both set it runs the operator and dispatcher against them.
import { join } from "node:path";
import { buildConsole } from "../../console/build.ts";
import { resolveAssets, startControlPlane } from "./control-plane.ts";
import { DEMO_NAMESPACE, DEMO_WEBHOOK, startDevStack } from "./dev-stack.ts";
import { startRedis } from "./redis.ts";

const external = process.env.KUBECONFIG && process.env.REDIS_URL;
const cleanups: Array<() => Promise<void>> = [];
let kubeconfig: string;
let redisUrl: string;
let kubectlBin = "kubectl";

if (external) {
  kubeconfig = process.env.KUBECONFIG ?? "";
  redisUrl = process.env.REDIS_URL ?? "";
  console.log(`using the cluster of KUBECONFIG=${kubeconfig} and REDIS_URL=${redisUrl}`);
} else {
  console.log("starting the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and redis-server ...");
  const assetsDir = await resolveAssets();
  // with the controllers, as a real cluster: namespaces terminate, garbage collection runs
  const [controlPlane, redis] = await Promise.all([
    startControlPlane({ assetsDir, controllers: true }),
    startRedis(),
  ]);
  cleanups.push(
    () => controlPlane.stop(),
    () => redis.stop(),
  );
  kubeconfig = controlPlane.kubeconfigPath;
  redisUrl = redis.url;
  kubectlBin = join(assetsDir, "kubectl");
}

// the dispatcher runs from the sources and serves the console from console/build/
await buildConsole();
const stack = await startDevStack({ kubeconfig, redisUrl, kubectlBin });
cleanups.unshift(() => stack.stop());
stack.receiver.deliveries.length = 0;

const eventId = await stack.publish("appointment.completed", {
  appointmentId: "apt_4821",
  status: "completed",
});
const deadline = Date.now() + 30_000;
let phase = "";
while (Date.now() < deadline && phase !== "SENT") {
  await new Promise((resolve) => setTimeout(resolve, 250));
  phase = await stack
    .kubectl(["get", "webhookevents", "-n", DEMO_NAMESPACE, "-o", "jsonpath={.items[*].status.phase}"])
    .catch(() => "");
}
const delivery = stack.receiver.deliveries[0];
const kubectlCmd = external ? "kubectl" : `${kubectlBin} --kubeconfig ${kubeconfig}`;

console.log(`
Dataforce Webhooks is running.

  kubeconfig       ${kubeconfig}
  Redis            ${redisUrl}
  dispatcher       ${stack.dispatcherUrl}   (ingest token ${stack.ingestToken}, admin token ${stack.adminToken})
  event log        ${stack.dispatcherUrl}/console/#token=${stack.adminToken}
                   (the console; the token in the fragment is never sent to the server)
  operator         ${stack.operatorUrl}/metrics
  demo receiver    ${stack.receiver.url}
  logs             ${stack.logDir}

Demo event ${eventId} (appointment.completed) → webhook ${DEMO_WEBHOOK}: ${
  delivery ? `received, signature ${delivery.verified ? "verified" : "NOT verified"}` : "not received yet"
}; WebhookEvent phase: ${phase || "not mirrored yet"}.

Try:
  export KUBECONFIG=${kubeconfig}
  ${kubectlCmd} get webhookintegrations,webhooks,webhookevents -n ${DEMO_NAMESPACE}
  curl -s -X POST ${stack.dispatcherUrl}/v1/events -H 'authorization: Bearer ${stack.ingestToken}' \\
       -H 'content-type: application/json' \\
       -d '{"type":"appointment.completed","namespace":"${DEMO_NAMESPACE}","data":{"appointmentId":"apt_1"}}'
  curl -s '${stack.dispatcherUrl}/v1/deliveries?namespace=${DEMO_NAMESPACE}' -H 'authorization: Bearer ${stack.adminToken}'
  curl -s ${stack.dispatcherUrl}/metrics | grep ^dataforce_

The operator watches every namespace: apply the README's example (namespace acme) and
\`kubectl get dataforce -n acme\` shows it reconciled, or why not (its header Secret, its URL).

Ctrl-C stops everything.`);

stack.receiver.deliveries.length = 0;
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    console.log("\nstopping ...");
    for (const cleanup of cleanups) await cleanup();
    process.exit(0);
  });
}
setInterval(() => {
  for (const d of stack.receiver.deliveries.splice(0))
    console.log(`receiver: ${d.id} ${d.verified ? "verified" : "BAD SIGNATURE"} ${JSON.stringify(d.body)}`);
}, 500);
