import type { KubeConfig } from "@kubernetes/client-node";
import { getJson, isNotFound, PARTIAL_OBJECT_METADATA, resourcePath } from "../controller/kube.ts";
import { SECRETS } from "../resources.ts";
import type { SecretExists } from "./namespace-inputs.ts";

/** Looks a Secret up by name as metadata only: its data never reaches the operator this way. */
export function secretExistsVia(kubeConfig: KubeConfig): SecretExists {
  return async (namespace, name) => {
    try {
      await getJson(kubeConfig, resourcePath(SECRETS, { namespace, name }), {
        accept: PARTIAL_OBJECT_METADATA,
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  };
}
