/**
 * Starts a throwaway kube-apiserver + etcd and a Redis on loopback for local work
 * (`npx node test/env/start-control-plane.ts`), prints how to reach them and runs
 * until Ctrl-C. Everything lives in temp dirs that are removed on exit.
 */
import { resolveAssets, startControlPlane } from "./control-plane.ts";
import { startRedis } from "./redis.ts";

const assetsDir = await resolveAssets();
const started = performance.now();
const controlPlane = await startControlPlane({ assetsDir });
const redis = await startRedis().catch(async (error: unknown) => {
  await controlPlane.stop();
  throw error;
});
const seconds = ((performance.now() - started) / 1000).toFixed(1);

console.log(`# kube-apiserver ${controlPlane.server} and ${redis.url} ready in ${seconds}s`);
console.log(`# logs: ${controlPlane.dir}/{etcd,kube-apiserver}.log; Ctrl-C stops everything`);
console.log(`export KUBECONFIG=${controlPlane.kubeconfigPath}`);
console.log(`export REDIS_URL=${redis.url}`);
console.log(`export PATH=${assetsDir}:$PATH  # kubectl, etcd, kube-apiserver`);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log("# stopping");
  await Promise.all([controlPlane.stop(), redis.stop()]);
  process.exit(0);
}
// Registered after process.ts's own handlers, which would exit at once: take them off
// so that stop() can end the processes gracefully and remove the temp dirs.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.removeAllListeners(signal);
  process.on(signal, () => void shutdown());
}
// Keep running until a signal arrives.
setInterval(() => {}, 1 << 30);
