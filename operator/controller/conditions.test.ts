import { describe, expect, it } from "vitest";
import {
  type Condition,
  findCondition,
  isConditionTrue,
  kubeTime,
  removeCondition,
  setCondition,
} from "./conditions.ts";

const t0 = new Date("2026-01-02T03:04:05.678Z");
const t1 = new Date("2026-01-02T04:00:00.000Z");

describe("setCondition", () => {
  it("adds a new condition with lastTransitionTime = now, in seconds precision", () => {
    const conditions = setCondition(
      undefined,
      { type: "Ready", status: "Unknown", reason: "Reconciling", message: "", observedGeneration: 1 },
      t0,
    );
    expect(conditions).toEqual([
      {
        type: "Ready",
        status: "Unknown",
        reason: "Reconciling",
        message: "",
        observedGeneration: 1,
        lastTransitionTime: "2026-01-02T03:04:05Z",
      },
    ]);
  });

  it("keeps lastTransitionTime when the status is unchanged but updates reason, message and generation", () => {
    const first = setCondition(
      [],
      { type: "Ready", status: "False", reason: "SecretNotFound", message: "a", observedGeneration: 1 },
      t0,
    );
    const second = setCondition(
      first,
      { type: "Ready", status: "False", reason: "IntegrationDisabled", message: "b", observedGeneration: 2 },
      t1,
    );
    expect(second).toEqual([
      {
        type: "Ready",
        status: "False",
        reason: "IntegrationDisabled",
        message: "b",
        observedGeneration: 2,
        lastTransitionTime: kubeTime(t0),
      },
    ]);
  });

  it("moves lastTransitionTime when the status changes", () => {
    const first = setCondition([], { type: "Ready", status: "False", reason: "Paused", message: "" }, t0);
    const second = setCondition(first, { type: "Ready", status: "True", reason: "Active", message: "" }, t1);
    expect(second[0]?.lastTransitionTime).toBe("2026-01-02T04:00:00Z");
  });

  it("honours an explicit lastTransitionTime only on a transition", () => {
    const first = setCondition(
      [],
      {
        type: "Ready",
        status: "False",
        reason: "Paused",
        message: "",
        lastTransitionTime: "2020-01-01T00:00:00Z",
      },
      t0,
    );
    expect(first[0]?.lastTransitionTime).toBe("2020-01-01T00:00:00Z");
    const same = setCondition(
      first,
      {
        type: "Ready",
        status: "False",
        reason: "Paused",
        message: "",
        lastTransitionTime: "2021-01-01T00:00:00Z",
      },
      t1,
    );
    expect(same[0]?.lastTransitionTime).toBe("2020-01-01T00:00:00Z");
  });

  it("keeps the order of other conditions and does not modify its input", () => {
    const input: Condition[] = [
      {
        type: "Ready",
        status: "True",
        reason: "Active",
        message: "",
        lastTransitionTime: "2020-01-01T00:00:00Z",
      },
      {
        type: "Stalled",
        status: "False",
        reason: "Fine",
        message: "",
        lastTransitionTime: "2020-01-01T00:00:00Z",
      },
    ];
    const frozen = structuredClone(input);
    const out = setCondition(input, { type: "Ready", status: "False", reason: "Paused", message: "" }, t0);
    expect(input).toEqual(frozen);
    expect(out.map((c) => c.type)).toEqual(["Ready", "Stalled"]);
    expect(out[1]).toBe(input[1]);
    const added = setCondition(
      out,
      { type: "Reconciling", status: "True", reason: "Progressing", message: "" },
      t0,
    );
    expect(added.map((c) => c.type)).toEqual(["Ready", "Stalled", "Reconciling"]);
  });

  it("drops observedGeneration when the input has none", () => {
    const first = setCondition([], {
      type: "Ready",
      status: "True",
      reason: "Active",
      message: "",
      observedGeneration: 3,
    });
    const second = setCondition(first, { type: "Ready", status: "True", reason: "Active", message: "" });
    expect(second[0]).not.toHaveProperty("observedGeneration");
  });

  it.each([
    [{ type: "Ready", status: "Maybe", reason: "Active", message: "" }, /status/],
    [{ type: "Ready", status: "True", reason: "not camel case", message: "" }, /reason/],
    [{ type: "Ready", status: "True", reason: "", message: "" }, /reason/],
    [{ type: "Ready!", status: "True", reason: "Active", message: "" }, /type/],
    [{ type: "Ready", status: "True", reason: "Active", message: "x".repeat(32769) }, /message/],
  ])("rejects an invalid condition %#", (input, error) => {
    expect(() => setCondition([], input as Parameters<typeof setCondition>[1])).toThrow(error);
  });

  it("accepts a domain-prefixed type and reasons with digits, commas and colons", () => {
    expect(() =>
      setCondition([], {
        type: "webhooks.dataforce.io/Synced",
        status: "True",
        reason: "Http2xx:OK",
        message: "",
      }),
    ).not.toThrow();
  });
});

describe("condition lookups", () => {
  const conditions = setCondition([], { type: "Ready", status: "True", reason: "Active", message: "" });

  it("finds, tests and removes by type", () => {
    expect(findCondition(conditions, "Ready")?.reason).toBe("Active");
    expect(findCondition(undefined, "Ready")).toBeUndefined();
    expect(isConditionTrue(conditions, "Ready")).toBe(true);
    expect(isConditionTrue(conditions, "Stalled")).toBe(false);
    expect(removeCondition(conditions, "Ready")).toEqual([]);
  });
});
