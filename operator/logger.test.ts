import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, maskSecrets } from "./logger.ts";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, stream };
}

/** What ioredis throws when a script fails: the command and every argument attached. */
function redisError(): Error {
  const routing = JSON.stringify({
    namespace: "acme",
    signingSecrets: [SECRET],
    webhooks: [{ name: "a", headers: { authorization: "Bearer tok-123" } }],
  });
  const err = new Error("WRONGTYPE Operation against a key holding the wrong kind of value") as Error & {
    command: { name: string; args: string[] };
  };
  err.command = { name: "evalsha", args: ["sha", "2", "routing", "rev", "acme", routing, "chan"] };
  return err;
}

describe("createLogger", () => {
  it("logs no command arguments, signing secrets or bearer tokens of an ioredis error", () => {
    const { lines, stream } = capture();
    const logger = createLogger({ level: "info" }, stream);
    const cause = redisError();
    const err = new Error(`reconcile failed: ${SECRET}`, { cause });
    logger.warn({ err: cause, key: "acme/default" }, "reconcile failed, retrying with backoff");
    logger.error({ err }, "wrapped");
    expect(lines).toHaveLength(2);
    const output = lines.join("");
    expect(output).not.toContain("whsec_M");
    expect(output).not.toContain("Bearer tok");
    expect(output).not.toContain("evalsha");
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({
      key: "acme/default",
      err: { message: "WRONGTYPE Operation against a key holding the wrong kind of value" },
    });
  });

  it("redacts authorization headers and signing secrets logged as objects", () => {
    const { lines, stream } = capture();
    const logger = createLogger({ level: "info" }, stream);
    logger.info(
      { request: { headers: { authorization: "Bearer tok-456" } }, routing: { signingSecrets: [SECRET] } },
      "x",
    );
    const output = lines.join("");
    expect(output).not.toContain("tok-456");
    expect(output).not.toContain(SECRET);
  });

  it("masks secrets in free text", () => {
    expect(maskSecrets(`a ${SECRET} b Bearer abc.def c`)).toBe("a whsec_[REDACTED] b Bearer [REDACTED] c");
  });
});
