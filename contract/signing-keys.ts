import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";

/**
 * The two Standard Webhooks signature schemes and how their keys are written:
 *  - `v1`, symmetric: HMAC-SHA256 with a shared secret, `whsec_` + base64 of 24 to 64 bytes;
 *  - `v1a`, asymmetric: ed25519, the private key `whsk_` + base64 of its 32-byte seed (RFC 8032),
 *    the public key `whpk_` + base64 of its 32 bytes. The receiver holds only the public key, so
 *    a leak on its side cannot forge deliveries.
 * A namespace's routing may hold keys of both schemes (while switching); each signs every message.
 */
export type SignatureScheme = "v1" | "v1a";

export const SIGNATURE_SCHEMES: readonly SignatureScheme[] = ["v1", "v1a"];

export const SIGNING_SECRET_PREFIX = "whsec_";
export const SIGNING_KEY_PREFIX = "whsk_";
export const PUBLIC_KEY_PREFIX = "whpk_";

/** Standard Webhooks: a symmetric secret holds 24 to 64 random bytes. */
export const SIGNING_SECRET_BYTES = { min: 24, max: 64 } as const;
const ED25519_SEED_BYTES = 32;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The scheme a signing key belongs to, by its prefix; undefined when it is neither. */
export function schemeOf(key: string): SignatureScheme | undefined {
  if (key.startsWith(SIGNING_SECRET_PREFIX)) return "v1";
  if (key.startsWith(SIGNING_KEY_PREFIX)) return "v1a";
  return undefined;
}

/** Whether `key` is a usable `whsec_` secret or `whsk_` private key (format and length). */
export function isValidSigningKey(key: string): boolean {
  const scheme = schemeOf(key);
  if (scheme === undefined) return false;
  const encoded = key.slice(scheme === "v1" ? SIGNING_SECRET_PREFIX.length : SIGNING_KEY_PREFIX.length);
  if (!BASE64.test(encoded)) return false;
  const bytes = Buffer.from(encoded, "base64").length;
  return scheme === "v1"
    ? bytes >= SIGNING_SECRET_BYTES.min && bytes <= SIGNING_SECRET_BYTES.max
    : bytes === ED25519_SEED_BYTES;
}

/** What a valid key of each scheme looks like, for error messages. */
export const SIGNING_KEY_FORMATS =
  `whsec_<base64 of ${SIGNING_SECRET_BYTES.min} to ${SIGNING_SECRET_BYTES.max} bytes> (v1) or ` +
  `whsk_<base64 of a ${ED25519_SEED_BYTES}-byte ed25519 seed> (v1a)`;

/** PKCS#8 DER of an ed25519 private key, up to its seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** The ed25519 private key of a `whsk_` key. */
export function ed25519PrivateKey(key: string): KeyObject {
  const seed = Buffer.from(key.slice(SIGNING_KEY_PREFIX.length), "base64");
  if (!key.startsWith(SIGNING_KEY_PREFIX) || seed.length !== ED25519_SEED_BYTES) {
    throw new Error(`an ed25519 signing key is whsk_ + the base64 of a ${ED25519_SEED_BYTES}-byte seed`);
  }
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
}

/** The `whpk_` public key that verifies what the `whsk_` key signs. */
export function publicKeyOf(key: string): string {
  const jwk = createPublicKey(ed25519PrivateKey(key)).export({ format: "jwk" });
  return `${PUBLIC_KEY_PREFIX}${Buffer.from(jwk.x ?? "", "base64url").toString("base64")}`;
}

/** A new ed25519 key pair, as `whsk_` (private) and `whpk_` (public). */
export function generateSigningKey(): { privateKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d ?? "", "base64url");
  const key = `${SIGNING_KEY_PREFIX}${seed.toString("base64")}`;
  return { privateKey: key, publicKey: publicKeyOf(key) };
}
