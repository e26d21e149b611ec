import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import { INTEGRATION_NAME } from "../api/v1alpha1/index.ts";
import type { OperatorCaches } from "../caches.ts";
import type { NamespaceInputs } from "./plan.ts";

// Gathers what planNamespace needs from the informer caches: the namespace's
// integration, its webhooks and the decoded data of the Secrets they reference.

export interface GeneratedSecret {
  name: string;
  key: string;
}

/**
 * How often an object waiting for a Secret is looked at again. The informer sees only Secrets that
 * carry the consent label, so creating (or un-labelling) one without it wakes nothing: this
 * re-check is what tells the user "not labelled" instead of "not found".
 */
export const SECRET_RECHECK_MS = 10_000;

/** Ready reasons that wait for a Secret to appear or to be labelled. */
export function waitsForSecret(reason: string): boolean {
  return reason === "SecretNotFound" || reason === "SecretNotLabelled";
}

/** Whether a Secret exists, whatever its labels (the informer cache holds only consenting ones). */
export type SecretExists = (namespace: string, name: string) => Promise<boolean>;

/**
 * namespaceInputs, plus which referenced Secrets exist without the consent label: those missing
 * from the cache are looked up (metadata only), so that a user is told to label a Secret rather
 * than that it does not exist.
 */
export async function gatherNamespaceInputs(
  caches: OperatorCaches,
  namespace: string,
  generatedSecret: GeneratedSecret,
  secretExists: SecretExists,
  fresh?: V1Secret,
): Promise<NamespaceInputs> {
  const inputs = namespaceInputs(caches, namespace, generatedSecret, fresh);
  const signing = signingSecretName(inputs.integration);
  const missing = [...referencedSecrets(signing, inputs.webhooks, generatedSecret)].filter(
    // the generated secret, when missing, is the integration reconciler's to create
    (name) => !inputs.secrets.has(name) && (signing !== undefined || name !== generatedSecret.name),
  );
  const unlabelled = new Set<string>();
  for (const name of missing) if (await secretExists(namespace, name)) unlabelled.add(name);
  return { ...inputs, unlabelledSecrets: unlabelled };
}

export function namespaceInputs(
  caches: OperatorCaches,
  namespace: string,
  generatedSecret: GeneratedSecret,
  /** A Secret just written by this reconcile, newer than the cache. */
  fresh?: V1Secret,
): NamespaceInputs {
  const integration = live(caches.integrations.get(namespace, INTEGRATION_NAME));
  const webhooks = caches.webhooks.list(namespace).filter((w) => live(w) !== undefined);
  const secrets = new Map<string, Record<string, string>>();
  for (const name of referencedSecrets(signingSecretName(integration), webhooks, generatedSecret)) {
    const secret = fresh?.metadata?.name === name ? fresh : caches.secrets.get(namespace, name);
    if (secret) secrets.set(name, decodeSecret(secret));
  }
  return { namespace, integration, webhooks, secrets, generatedSecret };
}

/** Whether the namespace's integration or webhooks read this Secret (the generated one included). */
export function secretIsRead(
  caches: OperatorCaches,
  secret: KubernetesObject,
  generatedSecret: GeneratedSecret,
): boolean {
  const namespace = secret.metadata?.namespace ?? "";
  const integration = caches.integrations.get(namespace, INTEGRATION_NAME);
  const webhooks = caches.webhooks.list(namespace);
  if (!integration && webhooks.length === 0) return false;
  return referencedSecrets(signingSecretName(integration), webhooks, generatedSecret).has(
    secret.metadata?.name ?? "",
  );
}

/** The Secret the integration names for its signing secret, if it names one (however malformed its spec). */
export function signingSecretName(
  integration: { spec?: { signingSecretRef?: { name?: unknown } } } | undefined,
): string | undefined {
  const name = integration?.spec?.signingSecretRef?.name;
  return typeof name === "string" && name !== "" ? name : undefined;
}

/** Names of the Secrets a namespace's objects read (the generated one included). */
export function referencedSecrets(
  signingSecretName: string | undefined,
  webhooks: ReadonlyArray<{ spec: { headers?: Array<{ valueFrom?: { secretKeyRef: { name: string } } }> } }>,
  generatedSecret: GeneratedSecret,
): Set<string> {
  const names = new Set<string>([signingSecretName ?? generatedSecret.name]);
  for (const webhook of webhooks) {
    const headers: unknown = webhook.spec?.headers;
    if (!Array.isArray(headers)) continue; // an invalid spec, reported by the webhook reconciler
    for (const header of headers as Array<{ valueFrom?: { secretKeyRef?: { name?: unknown } } } | null>) {
      const name = header?.valueFrom?.secretKeyRef?.name;
      if (typeof name === "string" && name !== "") names.add(name);
    }
  }
  return names;
}

export function decodeSecret(secret: V1Secret): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(secret.data ?? {})) {
    data[key] = Buffer.from(value, "base64").toString("utf8");
  }
  // stringData is write-only on the server, but a Secret passed straight from a create call may carry it.
  Object.assign(data, secret.stringData ?? {});
  return data;
}

/** Objects being deleted no longer count. */
function live<T extends { metadata: { deletionTimestamp?: string } }>(object: T | undefined): T | undefined {
  return object && !object.metadata.deletionTimestamp ? object : undefined;
}
