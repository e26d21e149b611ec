import { describe, expect, it } from "vitest";
import { generateEncryptionKey, parseEncryptionKeys, secretBox } from "./secret-box.ts";

const OLD = generateEncryptionKey("old");
const NEW = generateEncryptionKey("new");

describe("secretBox", () => {
  it("seals so that only the same namespace opens, never the same text twice", () => {
    const box = secretBox(OLD);
    const sealed = box.seal("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "routing/team-a");
    expect(sealed).toMatch(/^dfw1:old:[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain("whsec_");
    expect(box.seal("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "routing/team-a")).not.toBe(sealed);
    expect(box.open(sealed, "routing/team-a")).toBe("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    expect(() => box.open(sealed, "routing/team-b")).toThrow(/does not authenticate/);
  });

  it("refuses tampered text and unknown keys", () => {
    const box = secretBox(OLD);
    const sealed = box.seal("Bearer t0k3n", "ns");
    const body = sealed.slice(sealed.lastIndexOf(":") + 1);
    const flipped = `${body.slice(0, -2)}${body.at(-2) === "A" ? "B" : "A"}${body.at(-1)}`;
    expect(() => box.open(sealed.replace(body, flipped), "ns")).toThrow(/does not authenticate/);
    expect(() => secretBox(NEW).open(sealed, "ns")).toThrow(/known key/);
    expect(() => box.open("Bearer t0k3n", "ns")).toThrow(/known key/);
  });

  it("rotates: the first key seals, every key opens", () => {
    const before = secretBox(OLD).seal("v", "ns");
    const rotated = secretBox(`${NEW},${OLD}`);
    expect(rotated.currentKeyId).toBe("new");
    expect(rotated.open(before, "ns")).toBe("v");
    expect(rotated.keyIdOf(before)).toBe("old");
    expect(rotated.keyIdOf(rotated.seal("v", "ns"))).toBe("new");
  });

  it("parses keys strictly and never echoes one in an error", () => {
    expect([...parseEncryptionKeys(`${NEW}, ${OLD}`).keys()]).toEqual(["new", "old"]);
    for (const bad of ["", "nokey", "a:c2hvcnQ=", `${NEW},${NEW}`, "bad id:AAAA"]) {
      expect(() => parseEncryptionKeys(bad)).toThrow();
    }
    try {
      parseEncryptionKeys("a:c2hvcnQ=");
    } catch (error) {
      expect((error as Error).message).not.toContain("c2hvcnQ=");
    }
  });
});
