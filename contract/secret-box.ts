import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { z } from "zod";

/**
 * Authenticated encryption (AES-256-GCM) of the secrets the routing documents carry — signing
 * secrets and header values — so that Redis never holds them in clear: whoever reads Redis (a
 * dump, a replica, a neighbour with network access) learns nothing usable, and cannot move a
 * sealed value to another namespace either (the namespace is the additional authenticated data).
 *
 * Keys come from the settings as `id:base64(32 bytes)[,id:key…]`, the first sealing new values,
 * all of them opening (rotation: prepend a new key, keep the old ones until every document has
 * been rewritten). Sealed text: `dfw1:<key id>:<base64url of iv(12) | tag(16) | ciphertext>`.
 */
export interface SecretBox {
  /** The id of the key that seals. */
  readonly currentKeyId: string;
  seal(plaintext: string, context: string): string;
  /** Throws when the text was not sealed by one of the keys for this context (tampered, moved, unknown key). */
  open(sealed: string, context: string): string;
  /** The id of the key that sealed `sealed` (undefined when it is not sealed text). */
  keyIdOf(sealed: string): string | undefined;
}

const PREFIX = "dfw1";
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Parses `id:base64key[,id:base64key…]`; throws with what is wrong (never with a key in the message). */
export function parseEncryptionKeys(text: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  for (const entry of text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")) {
    const colon = entry.indexOf(":");
    const id = colon < 0 ? "" : entry.slice(0, colon);
    if (!KEY_ID.test(id))
      throw new Error("each encryption key is `<id>:<base64 of 32 bytes>` with an id of [A-Za-z0-9_-]");
    const key = Buffer.from(entry.slice(colon + 1), "base64");
    if (key.length !== KEY_BYTES) throw new Error(`encryption key ${id} is not 32 bytes of base64`);
    if (keys.has(id)) throw new Error(`encryption key id ${id} appears twice`);
    keys.set(id, key);
  }
  if (keys.size === 0) throw new Error("at least one encryption key is required");
  return keys;
}

export function secretBox(keysText: string): SecretBox {
  const keys = parseEncryptionKeys(keysText);
  const [currentKeyId, currentKey] = [...keys.entries()][0]!;
  return {
    currentKeyId,
    seal(plaintext, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", currentKey, iv);
      cipher.setAAD(Buffer.from(context));
      const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      const sealed = Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString("base64url");
      return `${PREFIX}:${currentKeyId}:${sealed}`;
    },
    open(sealed, context) {
      const [prefix, id = "", body = ""] = sealed.split(":");
      const key = keys.get(id);
      if (prefix !== PREFIX || key === undefined)
        throw new Error(`not sealed with a known key (key id ${JSON.stringify(id)})`);
      const bytes = Buffer.from(body, "base64url");
      if (bytes.length < IV_BYTES + TAG_BYTES) throw new Error("sealed value is truncated");
      const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      try {
        return Buffer.concat([
          decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)),
          decipher.final(),
        ]).toString("utf8");
      } catch {
        throw new Error("sealed value does not authenticate (tampered, or sealed for another namespace)");
      }
    },
    keyIdOf(sealed) {
      const [prefix, id] = sealed.split(":");
      return prefix === PREFIX ? id : undefined;
    },
  };
}

/** A fresh key entry for the settings (`id:base64`), e.g. for a chart or a test. */
export function generateEncryptionKey(id: string): string {
  return `${id}:${randomBytes(KEY_BYTES).toString("base64")}`;
}

/** The settings' form of the keys: `id:base64(32 bytes)[,…]`, validated (errors never echo a key). */
export function encryptionKeysSetting() {
  return z.string({ error: "required" }).superRefine((text, ctx) => {
    try {
      parseEncryptionKeys(text);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
    }
  });
}
