import {
  ApiException,
  HttpMethod,
  type KubeConfig,
  type KubernetesObject,
  RequestContext,
} from "@kubernetes/client-node";
import { fetch } from "undici";

// The few things about the Kubernetes API that every part of the machinery shares:
// resource paths, object keys, and errors (client-node's ApiException, `.code` = HTTP status).

/** A resource as the API serves it, e.g. `{ group: "", version: "v1", plural: "configmaps" }`. */
export interface ResourceType {
  /** API group; `""` for the core group. */
  group: string;
  version: string;
  plural: string;
}

/** `namespace/name` for namespaced objects, `name` for cluster-scoped ones (client-go's MetaNamespaceKeyFunc). */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name ?? "";
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf("/");
  return slash < 0
    ? { namespace: "", name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** `/api/v1/namespaces/ns/configmaps[/name[/status]]` or `/apis/group/version/...`. */
export function resourcePath(
  type: ResourceType,
  where: { namespace?: string | undefined; name?: string; subresource?: string } = {},
): string {
  const root = type.group === "" ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const segments = [root];
  if (where.namespace) segments.push("namespaces", encodeURIComponent(where.namespace));
  segments.push(type.plural);
  if (where.name !== undefined) segments.push(encodeURIComponent(where.name));
  if (where.subresource !== undefined) segments.push(where.subresource);
  return segments.join("/");
}

export function errorCode(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
  if (typeof code === "number") return code;
  if (typeof statusCode === "number") return statusCode;
  return undefined;
}

export const isNotFound = (err: unknown): boolean => errorCode(err) === 404;
export const isConflict = (err: unknown): boolean => errorCode(err) === 409;
export const isGone = (err: unknown): boolean => errorCode(err) === 410;

/** Accept header asking for an object's metadata only (PartialObjectMetadata). */
export const PARTIAL_OBJECT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/**
 * A GET with the KubeConfig's credentials and TLS, for what the generated clients do
 * not cover generically (a paged list of any resource, core or custom).
 * Non-2xx responses throw ApiException with the decoded `Status` as body.
 */
export async function getJson<T>(
  kc: KubeConfig,
  path: string,
  options: {
    query?: Record<string, string | undefined>;
    signal?: AbortSignal;
    /** e.g. PARTIAL_OBJECT_METADATA: the object without its spec, status or data. */
    accept?: string;
  } = {},
): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  const url = new URL(cluster.server.replace(/\/+$/, "") + path);
  for (const [name, value] of Object.entries(options.query ?? {})) {
    if (value !== undefined) url.searchParams.set(name, value);
  }
  const context = new RequestContext(url.toString(), HttpMethod.GET);
  context.setHeaderParam("Accept", options.accept ?? "application/json");
  await kc.applySecurityAuthentication(context);
  const response = await fetch(url, {
    headers: context.getHeaders(),
    dispatcher: context.getDispatcher(),
    signal: options.signal ?? null,
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (e.g. a proxy's error page): keep the text
  }
  if (!response.ok) {
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      headers[name] = value;
    });
    const message = (body as { message?: string } | undefined)?.message ?? response.statusText;
    throw new ApiException(response.status, `GET ${path}: ${message}`, body, headers);
  }
  return body as T;
}
