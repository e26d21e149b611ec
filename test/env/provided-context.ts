import "vitest";

// Values that the global setups hand to tests through `inject()`.
declare module "vitest" {
  export interface ProvidedContext {
    /** redis://127.0.0.1:PORT of the run's Redis (integration and e2e projects). */
    redisUrl: string;
    /** Path of an admin kubeconfig for the run's kube-apiserver (e2e project). */
    kubeconfig: string;
    /** Directory holding kube-apiserver, etcd and kubectl of the run (e2e project). */
    assetsDir: string;
  }
}
