import { describe, expect, it } from "vitest";
import { exceedsJsonDepth } from "./json-depth.ts";

describe("exceedsJsonDepth", () => {
  it("counts objects and arrays, not brackets inside strings", () => {
    expect(exceedsJsonDepth('{"a":[{"b":1}]}', 3)).toBe(false);
    expect(exceedsJsonDepth('{"a":[{"b":[1]}]}', 3)).toBe(true);
    expect(exceedsJsonDepth(JSON.stringify({ s: "[[[[{{{{" }), 1)).toBe(false);
    expect(exceedsJsonDepth(JSON.stringify({ s: 'quote \\" then [[[[' }), 1)).toBe(false);
    expect(exceedsJsonDepth("1", 0)).toBe(false);
  });

  it("stops at the first level too deep (5,000 nested arrays)", () => {
    expect(exceedsJsonDepth(`${"[".repeat(5000)}${"]".repeat(5000)}`, 32)).toBe(true);
  });
});
