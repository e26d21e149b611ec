/**
 * Starts a control plane (with its controllers) and a real node (node.ts) for local work
 * (`node test/node/start-node.ts`, as root), prints how to reach them and runs until Ctrl-C, then
 * stops everything and puts the host back.
 */
import { resolveAssets, startControlPlane } from "../env/control-plane.ts";
import { startNode } from "./node.ts";

const assetsDir = await resolveAssets();
const started = performance.now();
const controlPlane = await startControlPlane({ assetsDir, controllers: true, serviceAccountTokens: true });
const node = await startNode(controlPlane).catch(async (error: unknown) => {
  await controlPlane.stop();
  throw error;
});
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`# control plane ${controlPlane.server} and node ${node.name} Ready in ${seconds}s`);
console.log(`# logs: ${controlPlane.dir} and ${node.dir}; Ctrl-C stops everything`);
console.log(`export KUBECONFIG=${controlPlane.kubeconfigPath}`);
console.log(`export PATH=${assetsDir}:$PATH`);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log("# stopping");
  await node.stop();
  await controlPlane.stop();
  process.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.removeAllListeners(signal);
  process.on(signal, () => void shutdown());
}
setInterval(() => {}, 1 << 30);
