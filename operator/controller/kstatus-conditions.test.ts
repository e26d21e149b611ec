import { describe, expect, it } from "vitest";
import type { Condition } from "./conditions.ts";
import { formatDuration, type Standing, standingConditions } from "./kstatus-conditions.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const missing = { status: "False", reason: "SecretNotFound", message: "Secret s not found" } as const;
const grace = { generation: 3, graceMs: 120_000 };

const types = (conditions: readonly Condition[]) =>
  Object.fromEntries(conditions.map((c) => [c.type, `${c.status}/${c.reason}`]));

describe("standingConditions", () => {
  it.each<[Standing, Record<string, string>]>([
    ["Ready", { Ready: "True/Paused" }],
    ["Progressing", { Ready: "True/Paused", Reconciling: "True/Paused" }],
    ["Stalled", { Ready: "True/Paused", Stalled: "True/Paused" }],
  ])("%s sets Ready and the kstatus condition of that standing, and only it", (standing, expected) => {
    const before: Condition[] = [
      {
        type: "Stalled",
        status: "True",
        reason: "Old",
        message: "",
        lastTransitionTime: "2025-01-01T00:00:00Z",
      },
      {
        type: "Reconciling",
        status: "True",
        reason: "Old",
        message: "",
        lastTransitionTime: "2025-01-01T00:00:00Z",
      },
    ];
    const ready = { status: "True", reason: "Paused", message: "spec.paused is true" } as const;
    const { conditions, recheckAfterMs } = standingConditions(before, ready, standing, { ...grace, now: t0 });
    expect(types(conditions)).toEqual(expected);
    expect(recheckAfterMs).toBeUndefined();
    for (const condition of conditions) expect(condition.observedGeneration).toBe(3);
  });

  it("Waiting is Reconciling for the grace period, counted from when it began, then Stalled and stays so", () => {
    const first = standingConditions(undefined, missing, "Waiting", { ...grace, now: t0 });
    expect(types(first.conditions)).toEqual({
      Ready: "False/SecretNotFound",
      Reconciling: "True/SecretNotFound",
    });
    expect(first.recheckAfterMs).toBe(120_000);

    const later = standingConditions(first.conditions, missing, "Waiting", { ...grace, now: at(100) });
    expect(later.conditions).toEqual(first.conditions);
    expect(later.recheckAfterMs).toBe(20_000);

    const over = standingConditions(later.conditions, missing, "Waiting", { ...grace, now: at(120) });
    expect(types(over.conditions)).toEqual({ Ready: "False/SecretNotFound", Stalled: "True/SecretNotFound" });
    expect(over.conditions.find((c) => c.type === "Stalled")).toMatchObject({
      message: "Secret s not found (still so after 2m)",
      lastTransitionTime: "2026-01-01T00:02:00Z",
    });
    expect(over.recheckAfterMs).toBeUndefined();

    const after = standingConditions(over.conditions, missing, "Waiting", { ...grace, now: at(500) });
    expect(after.conditions).toEqual(over.conditions);
  });

  it("starts the grace again for a new generation or a new reason to wait", () => {
    const stalled = standingConditions(undefined, missing, "Waiting", { ...grace, graceMs: 0, now: t0 });
    expect(types(stalled.conditions)).toMatchObject({ Stalled: "True/SecretNotFound" });

    const edited = standingConditions(stalled.conditions, missing, "Waiting", {
      ...grace,
      generation: 4,
      now: at(10),
    });
    expect(types(edited.conditions)).toEqual({
      Ready: "False/SecretNotFound",
      Reconciling: "True/SecretNotFound",
    });
    expect(edited.recheckAfterMs).toBe(120_000);

    const other = { ...missing, reason: "IntegrationMissing" };
    const moved = standingConditions(edited.conditions, other, "Waiting", {
      ...grace,
      generation: 4,
      now: at(60),
    });
    expect(moved.conditions.find((c) => c.type === "Reconciling")).toMatchObject({
      reason: "IntegrationMissing",
      lastTransitionTime: "2026-01-01T00:01:00Z",
    });
    expect(moved.recheckAfterMs).toBe(120_000);
  });

  it("never leaves Reconciling and Stalled both True (kstatus would read whichever comes first)", () => {
    let conditions: Condition[] | undefined;
    const steps: Array<[Standing, number]> = [
      ["Waiting", 0],
      ["Stalled", 1],
      ["Progressing", 2],
      ["Waiting", 200],
      ["Waiting", 400],
      ["Ready", 401],
    ];
    for (const [standing, seconds] of steps) {
      ({ conditions } = standingConditions(conditions, missing, standing, { ...grace, now: at(seconds) }));
      const abnormal = conditions.filter((c) => c.type !== "Ready" && c.status === "True");
      expect(abnormal.length, standing).toBeLessThanOrEqual(1);
    }
    expect(types(conditions ?? [])).toEqual({ Ready: "False/SecretNotFound" });
  });
});

describe("formatDuration", () => {
  it.each([
    [120_000, "2m"],
    [90_000, "1m30s"],
    [2_000, "2s"],
    [1_500, "1.5s"],
  ])("%d ms → %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
