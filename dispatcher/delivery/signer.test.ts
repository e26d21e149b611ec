import { Webhook as StandardWebhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { decodeSigningSecret, signatureHeader } from "./signer.ts";

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
    const key = decodeSigningSecret(VECTOR.secret);
    expect(signatureHeader([key], VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature);
  });

  it("signs once per key while a secret rotates, and either secret verifies", () => {
    const other = "whsec_dGhpcyBpcyBhIHNlY29uZCB0ZXN0IHNlY3JldA==";
    const now = Math.floor(Date.now() / 1000);
    const header = signatureHeader([VECTOR.secret, other].map(decodeSigningSecret), "d-1", now, "{}");
    expect(header.split(" ")).toHaveLength(2);
    expect(header.split(" ")[0]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const headers = { "webhook-id": "d-1", "webhook-timestamp": String(now), "webhook-signature": header };
    for (const secret of [VECTOR.secret, other]) {
      expect(new StandardWebhook(secret).verify("{}", headers)).toEqual({});
    }
  });

  it("refuses secrets that are not whsec_ base64", () => {
    expect(() => decodeSigningSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).toThrow(/whsec_/);
    expect(() => decodeSigningSecret("whsec_")).toThrow(/non-empty/);
  });
});
