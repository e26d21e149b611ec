import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";

describe("createLogger", () => {
  it("never logs a failed Redis command's arguments or a routing document's secrets", () => {
    const lines: string[] = [];
    const logger = createLogger("info", "dispatcher", { write: (line: string) => lines.push(line) });
    const error = Object.assign(new Error("ERR something"), {
      command: { name: "evalsha", args: ["sha", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] },
    });
    logger.warn({ err: error, signingSecrets: ["whsec_x"] }, "failed");
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("whsec_");
    expect(JSON.parse(lines[0]!)).toMatchObject({
      err: { message: "ERR something" },
      signingSecrets: "[redacted]",
    });
  });
});
