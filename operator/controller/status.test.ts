import { describe, expect, it } from "vitest";
import { createMergePatch } from "./status.ts";

describe("createMergePatch", () => {
  it("is undefined for equal values", () => {
    expect(createMergePatch({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 2] } })).toBeUndefined();
    expect(createMergePatch({}, {})).toBeUndefined();
  });

  it("sets changed and new keys, nulls removed ones, recursing into objects", () => {
    expect(
      createMergePatch(
        { phase: "QUEUED", attempts: 1, lastError: "timeout", summary: { sent: 1, failed: 0 } },
        { phase: "SENT", attempts: 1, summary: { sent: 2, failed: 0 }, deliveredAt: "t" },
      ),
    ).toEqual({ phase: "SENT", lastError: null, summary: { sent: 2 }, deliveredAt: "t" });
  });

  it("replaces arrays whole (merge patch has no array diff)", () => {
    const conditions = [{ type: "Ready", status: "True" }];
    expect(createMergePatch({ conditions: [] }, { conditions })).toEqual({ conditions });
  });

  it("treats undefined in the target as absent", () => {
    expect(createMergePatch({ a: 1 }, { a: 1, b: undefined })).toBeUndefined();
    expect(createMergePatch({ a: 1, b: 2 }, { a: 1, b: undefined })).toEqual({ b: null });
  });

  it("replaces a value whose type changes", () => {
    expect(createMergePatch({ a: "x" }, { a: { b: 1 } })).toEqual({ a: { b: 1 } });
    expect(createMergePatch({ a: { b: 1 } }, { a: 3 })).toEqual({ a: 3 });
  });
});
