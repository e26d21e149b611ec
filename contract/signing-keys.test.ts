import { sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  ed25519PrivateKey,
  generateSigningKey,
  isValidSigningKey,
  publicKeyOf,
  schemeOf,
} from "./signing-keys.ts";

// RFC 8032, section 7.1, test 1: the seed, its public key, and the signature of the empty message.
const RFC8032 = {
  seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
  publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
  signature:
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
};
const b64 = (hex: string) => Buffer.from(hex, "hex").toString("base64");

describe("signing keys", () => {
  it("reads a whsk_ seed as RFC 8032 does: same public key, same signature", () => {
    const key = `whsk_${b64(RFC8032.seed)}`;
    expect(publicKeyOf(key)).toBe(`whpk_${b64(RFC8032.publicKey)}`);
    expect(sign(null, Buffer.alloc(0), ed25519PrivateKey(key)).toString("hex")).toBe(RFC8032.signature);
  });

  it("generates a whsk_/whpk_ pair that belongs together", () => {
    const pair = generateSigningKey();
    expect(pair.privateKey).toMatch(/^whsk_[A-Za-z0-9+/]{43}=$/);
    expect(pair.publicKey).toMatch(/^whpk_[A-Za-z0-9+/]{43}=$/);
    expect(publicKeyOf(pair.privateKey)).toBe(pair.publicKey);
    expect(isValidSigningKey(pair.privateKey)).toBe(true);
    expect(generateSigningKey().privateKey).not.toBe(pair.privateKey);
  });

  it("tells the schemes apart and refuses malformed or weak keys", () => {
    expect(schemeOf("whsec_abc")).toBe("v1");
    expect(schemeOf("whsk_abc")).toBe("v1a");
    expect(schemeOf("whpk_abc")).toBeUndefined();
    expect(isValidSigningKey(`whsec_${Buffer.alloc(24, 1).toString("base64")}`)).toBe(true);
    expect(isValidSigningKey(`whsec_${Buffer.alloc(23, 1).toString("base64")}`)).toBe(false);
    expect(isValidSigningKey(`whsk_${Buffer.alloc(31, 1).toString("base64")}`)).toBe(false);
    expect(isValidSigningKey(`whpk_${b64(RFC8032.publicKey)}`)).toBe(false); // a public key cannot sign
    expect(() => ed25519PrivateKey("whsk_abc")).toThrow(/32-byte seed/);
  });
});
