import { createHmac, createSecretKey, type KeyObject, sign } from "node:crypto";
import { ed25519PrivateKey, SIGNING_SECRET_PREFIX, schemeOf } from "../../contract/signing-keys.ts";

/** A namespace's signing key, decoded once per routing load (not per delivery). */
export type SigningKey = { scheme: "v1"; hmacKey: KeyObject } | { scheme: "v1a"; privateKey: KeyObject };

/**
 * Decodes a `whsec_` secret (v1, HMAC-SHA256) or a `whsk_` key (v1a, ed25519). The HMAC key is
 * kept as a KeyObject: Node converts a Buffer key into one on every createHmac call, which costs
 * ~13× the HMAC itself.
 */
export function decodeSigningKey(key: string): SigningKey {
  switch (schemeOf(key)) {
    case "v1": {
      const secret = Buffer.from(key.slice(SIGNING_SECRET_PREFIX.length), "base64");
      if (secret.length === 0) throw new Error("a signing secret holds a non-empty base64 key");
      return { scheme: "v1", hmacKey: createSecretKey(secret) };
    }
    case "v1a":
      return { scheme: "v1a", privateKey: ed25519PrivateKey(key) };
    default:
      throw new Error("a signing key starts with whsec_ (v1) or whsk_ (v1a)");
  }
}

/**
 * The `webhook-signature` header of Standard Webhooks: `v1,<base64 HMAC-SHA256>` or
 * `v1a,<base64 ed25519 signature>` of "id.timestamp.body", one space-separated signature per key,
 * so receivers holding either the old or the new key verify the message while keys rotate.
 */
export function signatureHeader(
  keys: readonly SigningKey[],
  messageId: string,
  timestampSeconds: number,
  body: string,
): string {
  const signed = `${messageId}.${timestampSeconds}.${body}`;
  let header = "";
  for (const key of keys) {
    if (header !== "") header += " ";
    header +=
      key.scheme === "v1"
        ? `v1,${createHmac("sha256", key.hmacKey).update(signed).digest("base64")}`
        : `v1a,${sign(null, Buffer.from(signed), key.privateKey).toString("base64")}`;
  }
  return header;
}
