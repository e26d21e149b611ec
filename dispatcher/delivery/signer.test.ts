import { Webhook as StandardWebhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { generateSigningKey } from "../../contract/signing-keys.ts";
import { verifiesV1a } from "../../test/support/verify-v1a.ts";
import { decodeSigningKey, signatureHeader } from "./signer.ts";

// The Standard Webhooks reference vector (standard-webhooks spec and its libraries' tests).
const VECTOR = {
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

describe("signatureHeader", () => {
  it("reproduces the Standard Webhooks reference vector", () => {
    const key = decodeSigningKey(VECTOR.secret);
    expect(signatureHeader([key], VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature);
  });

  it("signs once per key while a secret rotates, and either secret verifies", () => {
    const other = "whsec_dGhpcyBpcyBhIHNlY29uZCB0ZXN0IHNlY3JldA==";
    const now = Math.floor(Date.now() / 1000);
    const header = signatureHeader([VECTOR.secret, other].map(decodeSigningKey), "d-1", now, "{}");
    expect(header.split(" ")).toHaveLength(2);
    expect(header.split(" ")[0]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const headers = { "webhook-id": "d-1", "webhook-timestamp": String(now), "webhook-signature": header };
    for (const secret of [VECTOR.secret, other]) {
      expect(new StandardWebhook(secret).verify("{}", headers)).toEqual({});
    }
  });

  it("signs with ed25519 (v1a) for a whsk_ key, beside v1 while switching; an independent verifier accepts it", async () => {
    const pair = generateSigningKey();
    const now = Math.floor(Date.now() / 1000);
    const body = '{"type":"job.created"}';
    const header = signatureHeader([VECTOR.secret, pair.privateKey].map(decodeSigningKey), "d-2", now, body);
    const [v1, v1a] = header.split(" ");
    expect(v1).toMatch(/^v1,/);
    expect(v1a).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);
    const headers = { "webhook-id": "d-2", "webhook-timestamp": String(now), "webhook-signature": header };
    expect(await verifiesV1a(pair.publicKey, headers, body)).toBe(true);
    expect(new StandardWebhook(VECTOR.secret).verify(body, headers)).toEqual({ type: "job.created" });
    // another key, another message: no
    expect(await verifiesV1a(generateSigningKey().publicKey, headers, body)).toBe(false);
    expect(await verifiesV1a(pair.publicKey, headers, `${body} `)).toBe(false);
  });

  it("refuses keys that are neither whsec_ nor whsk_", () => {
    expect(() => decodeSigningKey("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).toThrow(/whsec_/);
    expect(() => decodeSigningKey("whsec_")).toThrow(/non-empty/);
  });
});
