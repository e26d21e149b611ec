import { describe, expect, it } from "vitest";
import { filterFromParams, filterParams } from "./filter.ts";

describe("a filter in the page's address", () => {
  it("round-trips, leaving out what is empty", () => {
    const filter = { namespace: "acme", eventType: "job.created", phase: "FAILED" as const };
    const params = filterParams(filter);
    expect(params.toString()).toBe("namespace=acme&eventType=job.created&phase=FAILED");
    expect(filterFromParams(params)).toEqual({ ...filter, webhook: undefined });
  });

  it("drops a phase the log does not have", () => {
    expect(filterFromParams(new URLSearchParams("phase=DONE&webhook=%20crm%20")).phase).toBeUndefined();
    expect(filterFromParams(new URLSearchParams("webhook=%20crm%20")).webhook).toBe("crm");
  });
});
