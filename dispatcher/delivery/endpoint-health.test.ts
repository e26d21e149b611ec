import { describe, expect, it } from "vitest";
import { EndpointHealthTracker, failureSummary } from "./endpoint-health.ts";

const KEY = "team-a/orders";

describe("EndpointHealthTracker", () => {
  it("counts failures in a row and the run's first failure; a success ends the run", () => {
    const tracker = new EndpointHealthTracker();
    tracker.record(KEY, "uid-1", "HTTP 503", 1_000);
    tracker.record(KEY, "uid-1", "timeout", 2_000);
    expect(tracker.snapshot(KEY, 2_500)).toEqual({
      uid: "uid-1",
      state: "Degraded",
      consecutiveFailures: 2,
      failureRatio: 1,
      windowAttempts: 2,
      firstFailureAt: 1_000,
      lastFailureAt: 2_000,
      lastFailureReason: "timeout",
      updatedAt: 2_500,
    });
    tracker.record(KEY, "uid-1", undefined, 3_000);
    const after = tracker.snapshot(KEY, 3_000);
    expect(after).toMatchObject({ consecutiveFailures: 0, failureRatio: 0.67, lastFailureAt: 2_000 });
    expect(after?.firstFailureAt).toBeUndefined();
  });

  it("takes the ratio over the last 20 attempts: old failures age out, and a low ratio reads Healthy", () => {
    const tracker = new EndpointHealthTracker();
    for (let i = 0; i < 5; i++) tracker.record(KEY, "u", "HTTP 500", i);
    for (let i = 0; i < 15; i++) tracker.record(KEY, "u", undefined, 10 + i);
    expect(tracker.snapshot(KEY, 100)).toMatchObject({ state: "Degraded", failureRatio: 0.25 });
    for (let i = 0; i < 2; i++) tracker.record(KEY, "u", undefined, 50 + i);
    expect(tracker.snapshot(KEY, 100)).toMatchObject({
      state: "Healthy",
      failureRatio: 0.15,
      windowAttempts: 20,
    });
    for (let i = 0; i < 3; i++) tracker.record(KEY, "u", undefined, 60 + i);
    expect(tracker.snapshot(KEY, 100)).toMatchObject({ failureRatio: 0 });
  });

  it("reads CircuitOpen with the next probe time while the circuit is not closed", () => {
    const tracker = new EndpointHealthTracker();
    tracker.record(KEY, "u", "connection_refused", 1);
    tracker.circuit(KEY, "open", 31_000);
    expect(tracker.snapshot(KEY, 2)).toMatchObject({ state: "CircuitOpen", nextProbeAt: 31_000 });
    tracker.circuit(KEY, "half-open");
    expect(tracker.snapshot(KEY, 2)).toMatchObject({ state: "CircuitOpen", nextProbeAt: 31_000 });
    tracker.record(KEY, "u", undefined, 3);
    tracker.circuit(KEY, "closed");
    const closed = tracker.snapshot(KEY, 4);
    expect(closed?.state).toBe("Degraded"); // 1 of 2 failed
    expect(closed?.nextProbeAt).toBeUndefined();
  });

  it("publishes a state change at once, other changes at most every minIntervalMs, and a healthy webhook never", () => {
    const tracker = new EndpointHealthTracker({ minIntervalMs: 5_000 });
    for (let i = 0; i < 10; i++) tracker.record("team-a/healthy", "u", undefined, i);
    expect(tracker.due(10)).toEqual([]);

    tracker.record(KEY, "u", "HTTP 500", 100);
    expect(tracker.due(100).map((r) => [r.field, r.health.state])).toEqual([[KEY, "Degraded"]]);
    tracker.record(KEY, "u", "HTTP 500", 200);
    expect(tracker.due(200)).toEqual([]); // same state, too soon
    expect(tracker.due(5_100).map((r) => r.health.consecutiveFailures)).toEqual([2]);
    expect(tracker.due(20_000)).toEqual([]); // nothing new
    tracker.circuit(KEY, "open", 40_000);
    expect(tracker.due(20_001).map((r) => r.health.state)).toEqual(["CircuitOpen"]);
    tracker.record(KEY, "u", undefined, 20_002);
    tracker.circuit(KEY, "closed");
    expect(tracker.due(20_003).map((r) => r.health.state)).toEqual(["Degraded"]);
  });

  it("puts a failed publication back", () => {
    const tracker = new EndpointHealthTracker();
    tracker.record(KEY, "u", "timeout", 1);
    const [first] = tracker.due(1);
    tracker.retry([first!.field]);
    expect(tracker.due(2).map((r) => r.field)).toEqual([KEY]);
  });

  it("starts afresh for a webhook made again (another uid)", () => {
    const tracker = new EndpointHealthTracker();
    tracker.record(KEY, "old", "timeout", 1);
    tracker.record(KEY, "new", undefined, 2);
    expect(tracker.snapshot(KEY, 3)).toMatchObject({ uid: "new", consecutiveFailures: 0, windowAttempts: 1 });
  });
});

describe("failureSummary", () => {
  it("names an HTTP status or the error code, never a body", () => {
    expect(failureSummary({ statusCode: 503, errorCode: "http_status" })).toBe("HTTP 503");
    expect(failureSummary({ errorCode: "connection_refused" })).toBe("connection_refused");
    expect(failureSummary({ statusCode: 302, errorCode: "redirect" })).toBe("redirect");
  });
});
