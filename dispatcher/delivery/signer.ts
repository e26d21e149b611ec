import { createHmac, createSecretKey, type KeyObject } from "node:crypto";

const SECRET_PREFIX = "whsec_";

/**
 * The HMAC key inside a Standard Webhooks secret (`whsec_` + base64), as a KeyObject: Node
 * converts a Buffer key into one on every createHmac call, which costs ~13× the HMAC itself.
 */
export function decodeSigningSecret(secret: string): KeyObject {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error("a signing secret starts with whsec_");
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), "base64");
  if (key.length === 0) throw new Error("a signing secret holds a non-empty base64 key");
  return createSecretKey(key);
}

/**
 * The `webhook-signature` header of Standard Webhooks: `v1,<base64 HMAC-SHA256 of
 * "id.timestamp.body">`, one space-separated signature per key so receivers holding either the
 * old or the new secret verify the message while a secret rotates.
 */
export function signatureHeader(
  keys: readonly KeyObject[],
  messageId: string,
  timestampSeconds: number,
  body: string,
): string {
  const signed = `${messageId}.${timestampSeconds}.${body}`;
  let header = "";
  for (const key of keys) {
    if (header !== "") header += " ";
    header += `v1,${createHmac("sha256", key).update(signed).digest("base64")}`;
  }
  return header;
}
