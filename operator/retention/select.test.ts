import { describe, expect, it } from "vitest";
import { selectForRetention } from "./select.ts";

const now = Date.parse("2026-03-01T12:00:00Z");
const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString().replace(".000", "");

describe("selectForRetention", () => {
  it("selects nothing when every event is young and within the count", () => {
    const events = [
      { name: "a", createdAt: at(1) },
      { name: "b", createdAt: at(2) },
    ];
    expect(selectForRetention(events, { retentionMs: 3_600_000, maxEvents: 10 }, now)).toEqual({
      expired: [],
      overflow: [],
      watermarkMs: undefined,
    });
  });

  it("deletes events older than the retention, oldest first", () => {
    const events = [
      { name: "young", createdAt: at(5) },
      { name: "old", createdAt: at(90) },
      { name: "older", createdAt: at(120) },
      { name: "edge", createdAt: at(60) },
    ];
    const selected = selectForRetention(events, { retentionMs: 3_600_000, maxEvents: 10 }, now);
    expect(selected.expired).toEqual(["older", "old"]);
    expect(selected.overflow).toEqual([]);
    expect(selected.watermarkMs).toBe(Date.parse(at(90)));
  });

  it("then deletes the oldest beyond maxEvents, ties broken by name", () => {
    const events = [
      { name: "e4", createdAt: at(1) },
      { name: "e2", createdAt: at(3) },
      { name: "e3b", createdAt: at(2) },
      { name: "e3a", createdAt: at(2) },
      { name: "e1", createdAt: at(4) },
      { name: "expired", createdAt: at(500) },
    ];
    const selected = selectForRetention(events, { retentionMs: 3_600_000, maxEvents: 2 }, now);
    expect(selected.expired).toEqual(["expired"]);
    expect(selected.overflow).toEqual(["e1", "e2", "e3a"]);
    expect(selected.watermarkMs).toBe(Date.parse(at(2)));
  });

  it("does not count expired events against maxEvents twice", () => {
    const events = [
      { name: "a", createdAt: at(500) },
      { name: "b", createdAt: at(400) },
      { name: "c", createdAt: at(1) },
    ];
    const selected = selectForRetention(events, { retentionMs: 3_600_000, maxEvents: 1 }, now);
    expect(selected).toMatchObject({ expired: ["a", "b"], overflow: [] });
  });
});
