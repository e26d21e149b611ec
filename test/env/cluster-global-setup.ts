import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { resolveAssets, startControlPlane } from "./control-plane.ts";
import { installCrds } from "./install-crds.ts";
import { startRedis } from "./redis.ts";
import "./provided-context.ts";

/**
 * One kube-apiserver + etcd and one Redis per e2e run. Tests isolate themselves by
 * namespace (createTestNamespace) and Redis key prefix. Builds the binaries first when
 * they are neither in KUBEBUILDER_ASSETS nor in the cache (minutes, once per machine).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const assetsDir = await resolveAssets();
  const started = performance.now();
  const [controlPlane, redis] = await Promise.allSettled([startControlPlane({ assetsDir }), startRedis()]);
  if (controlPlane.status === "rejected" || redis.status === "rejected") {
    await Promise.all([
      controlPlane.status === "fulfilled" ? controlPlane.value.stop() : undefined,
      redis.status === "fulfilled" ? redis.value.stop() : undefined,
    ]);
    throw controlPlane.status === "rejected" ? controlPlane.reason : (redis as PromiseRejectedResult).reason;
  }
  // Every suite needs the API; installing it once here keeps suites from racing the
  // admission policy's warm-up (suites still apply crds/ themselves, idempotently).
  await installCrds(join(assetsDir, "kubectl"), controlPlane.value.kubeconfigPath);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`e2e: kube-apiserver ${controlPlane.value.server} + ${redis.value.url} ready in ${seconds}s`);
  project.provide("kubeconfig", controlPlane.value.kubeconfigPath);
  project.provide("assetsDir", assetsDir);
  project.provide("redisUrl", redis.value.url);
  return async () => {
    await Promise.all([controlPlane.value.stop(), redis.value.stop()]);
  };
}
