import { describe, expect, it } from "vitest";
import { splitBySize } from "./command-size.ts";

describe("splitBySize", () => {
  const size = (n: number) => n;

  it("keeps order and fills parts up to the limit", () => {
    expect(splitBySize([3, 3, 3, 3, 3], size, 9)).toEqual([
      [3, 3, 3],
      [3, 3],
    ]);
  });

  it("gives an item larger than the limit a part of its own", () => {
    expect(splitBySize([2, 20, 2, 2], size, 5)).toEqual([[2], [20], [2, 2]]);
  });

  it("gives no part for no items, and one part when everything fits", () => {
    expect(splitBySize([], size, 5)).toEqual([]);
    expect(splitBySize([1, 1], size, 5)).toEqual([[1, 1]]);
  });
});
