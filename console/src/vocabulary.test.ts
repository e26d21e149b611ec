import { describe, expect, it } from "vitest";
import { EVENT_TYPES } from "../../contract/event-types.ts";
import { DELIVERY_PHASES, FAILURE_REASONS } from "../../contract/records.ts";
import * as console from "./vocabulary.ts";

describe("the console's vocabulary", () => {
  it("is the contract's", () => {
    expect(console.PHASES).toEqual(DELIVERY_PHASES);
    expect(console.EVENT_TYPES).toEqual(EVENT_TYPES);
    expect(console.FAILURE_REASONS).toEqual(FAILURE_REASONS);
  });
});
