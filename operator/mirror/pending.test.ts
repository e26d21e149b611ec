import { describe, expect, it } from "vitest";
import { PendingDeliveries, streamIdMs } from "./pending.ts";

describe("PendingDeliveries", () => {
  it("coalesces the entries of one delivery into one item", () => {
    const pending = new PendingDeliveries();
    expect(pending.add("d1", "100-0")).toBe(true);
    expect(pending.add("d1", "101-0")).toBe(false);
    expect(pending.add("d1", "101-0")).toBe(false); // a re-read entry is held once
    expect(pending.add("d2", "102-0")).toBe(true);
    expect(pending.size).toBe(2);
    expect(pending.entries).toBe(3);
    expect(pending.take("d1")).toEqual({ entryIds: ["100-0", "101-0"] });
    expect(pending.take("d1")).toBeUndefined();
  });

  it("counts taken entries until they are settled, and queues newer ones separately", () => {
    const pending = new PendingDeliveries();
    pending.add("d1", "100-0");
    pending.take("d1");
    expect(pending.entries).toBe(1);
    expect(pending.add("d1", "100-0")).toBe(false); // claimed again while in flight
    expect(pending.add("d1", "105-0")).toBe(true); // a newer state: mirror again afterwards
    pending.settle("d1");
    expect(pending.entries).toBe(1);
    expect(pending.take("d1")).toEqual({ entryIds: ["105-0"] });
  });

  it("puts the entries of a failed write back, before newer ones", () => {
    const pending = new PendingDeliveries();
    pending.add("d1", "100-0");
    const snapshot = pending.take("d1")!;
    pending.add("d1", "107-0");
    pending.restore("d1", snapshot);
    expect(pending.take("d1")).toEqual({ entryIds: ["100-0", "107-0"] });
  });

  it("reports the time of the oldest entry held, waiting or in flight", () => {
    const pending = new PendingDeliveries();
    expect(pending.oldestEntryMs()).toBeUndefined();
    pending.add("d2", "2000-3");
    pending.add("d1", "1000-0");
    pending.take("d1");
    expect(pending.oldestEntryMs()).toBe(1000);
    pending.settle("d1");
    expect(pending.oldestEntryMs()).toBe(2000);
    pending.clear();
    expect(pending.size).toBe(0);
  });

  it("reads the milliseconds of a stream id", () => {
    expect(streamIdMs("1700000000000-5")).toBe(1_700_000_000_000);
    expect(streamIdMs("42")).toBe(42);
  });
});
