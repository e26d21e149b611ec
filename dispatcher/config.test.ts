import { describe, expect, it } from "vitest";
import { ENVIRONMENT, loadSettings } from "./config.ts";

const KEY = "k1:dGVzdC1lbmNyeXB0aW9uLWtleS1vZi0zMi1ieXRlcyE=";
const required = {
  DISPATCHER_ENCRYPTION_KEYS: KEY,
  DISPATCHER_INGEST_TOKENS: "ingest-token-0123456789",
  DISPATCHER_ADMIN_TOKENS: "admin-token-0123456789, second-admin-token-0123",
};

describe("loadSettings", () => {
  it("applies defaults and splits lists", () => {
    const settings = loadSettings(required);
    expect(settings.adminTokens).toEqual(["admin-token-0123456789", "second-admin-token-0123"]);
    expect(settings.port).toBe(8080);
    expect(settings.keyTag).toBe("dataforce");
    expect(settings.endpointMaxQueued).toBe(settings.maxBuffered);
  });

  it("reads every documented variable", () => {
    const settings = loadSettings({
      ...required,
      DISPATCHER_PORT: "9000",
      DISPATCHER_CLAIM_IDLE_MS: "1500",
      DISPATCHER_ALLOWED_DESTINATIONS: "127.0.0.1,10.0.0.0/8",
    });
    expect(settings.port).toBe(9000);
    expect(settings.claimIdleMs).toBe(1_500);
    expect(settings.allowedDestinations).toEqual(["127.0.0.1", "10.0.0.0/8"]);
    expect(Object.values(ENVIRONMENT).every((name) => name.startsWith("DISPATCHER_"))).toBe(true);
  });

  it("names every problem by its variable", () => {
    let message = "";
    try {
      loadSettings({
        DISPATCHER_INGEST_TOKENS: "short",
        DISPATCHER_PORT: "http",
        DISPATCHER_ALLOWED_DESTINATIONS: "x",
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("DISPATCHER_INGEST_TOKENS: tokens are at least 16 characters");
    expect(message).toContain("DISPATCHER_ADMIN_TOKENS: required");
    expect(message).toContain("DISPATCHER_PORT:");
    expect(message).toContain('DISPATCHER_ALLOWED_DESTINATIONS: allowlist entry "x" is not an IP or CIDR');
    expect(message).toContain("DISPATCHER_ENCRYPTION_KEYS: required");
  });

  it("refuses encryption keys that are not 32 bytes, without echoing them", () => {
    const short = "k1:c2hvcnQta2V5";
    expect(() => loadSettings({ ...required, DISPATCHER_ENCRYPTION_KEYS: short })).toThrow(
      "DISPATCHER_ENCRYPTION_KEYS: encryption key k1 is not 32 bytes of base64",
    );
    try {
      loadSettings({ ...required, DISPATCHER_ENCRYPTION_KEYS: short });
    } catch (error) {
      expect((error as Error).message).not.toContain("c2hvcnQta2V5");
    }
  });
});
