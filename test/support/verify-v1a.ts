import { verifyAsync } from "@noble/ed25519";

/**
 * A receiver's check of a Standard Webhooks v1a (ed25519) signature, written against the spec
 * with @noble/ed25519, an implementation independent of node:crypto that the dispatcher signs
 * with: true when any `v1a,` signature of the header verifies under the `whpk_` public key.
 */
export async function verifiesV1a(
  publicKey: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
): Promise<boolean> {
  if (!publicKey.startsWith("whpk_")) throw new Error("a public key starts with whpk_");
  const key = Buffer.from(publicKey.slice("whpk_".length), "base64");
  const signed = Buffer.from(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.${body}`);
  const signatures = String(headers["webhook-signature"] ?? "")
    .split(" ")
    .filter((entry) => entry.startsWith("v1a,"))
    .map((entry) => Buffer.from(entry.slice("v1a,".length), "base64"));
  for (const signature of signatures) {
    if (await verifyAsync(signature, signed, key)) return true;
  }
  return false;
}
