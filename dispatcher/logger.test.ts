import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

function capture(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const logger = createLogger("info", "dispatcher", { write: (line: string) => lines.push(line) });
  return { lines, logger };
}

/** What ioredis throws when a script fails: the command and every argument attached. */
function redisError(): Error {
  const payload = JSON.stringify({ id: "evt-1", data: { note: SECRET } });
  const headers = JSON.stringify({ authorization: "Bearer tok-123", "x-team": "a" });
  return Object.assign(new Error("ERR something"), {
    command: { name: "evalsha", args: ["sha", "2", "k1", "k2", payload, headers] },
  });
}

describe("createLogger", () => {
  it("never logs a failed Redis command's arguments or a routing document's secrets", () => {
    const { lines, logger } = capture();
    logger.warn({ err: redisError(), signingSecrets: ["whsec_x"] }, "failed");
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("whsec_");
    expect(lines[0]).not.toContain("Bearer tok");
    expect(lines[0]).not.toContain("evalsha");
    expect(JSON.parse(lines[0]!)).toMatchObject({
      err: { message: "ERR something" },
      signingSecrets: "[redacted]",
    });
  });

  it("drops command arguments of causes and masks secrets in messages", () => {
    const { lines, logger } = capture();
    const inner = Object.assign(new Error(`inner ${SECRET}`), { cause: redisError() });
    const err = new Error("outcome batch failed: Bearer tok-456", { cause: inner });
    Object.assign(err, { details: { argv: ["x", SECRET], args: ["Bearer tok-789"] } });
    logger.error({ err }, "wrapped");
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).not.toContain("whsec_M");
    expect(line).not.toContain("tok-");
    expect(line).not.toContain("evalsha");
    expect(line).toContain("whsec_[REDACTED]");
    expect(line).toContain("ERR something");
  });
});
