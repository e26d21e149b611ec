import { describe, expect, it } from "vitest";
import { replayWindow } from "./replay.ts";

describe("a replay's time range", () => {
  const progress = { startedAt: "2026-11-30T09:40:00.500Z" };

  it("ends with the whole second the object was created in when `to` is absent", () => {
    // deliveries made at .150 of the second the object was created in (recorded as :31) are in it
    const window = replayWindow(
      { from: "2026-11-30T09:33:31.114Z" },
      { metadata: { name: "r", namespace: "ns", creationTimestamp: "2026-11-30T09:33:31Z" } },
      progress,
    );
    expect(window).toEqual({
      from: Date.parse("2026-11-30T09:33:31.114Z"),
      to: Date.parse("2026-11-30T09:33:31.999Z"),
    });
  });

  it("takes `to` as written when given", () => {
    const window = replayWindow(
      { from: "2026-11-30T09:00:00Z", to: "2026-11-30T09:10:00.250Z" },
      { metadata: { name: "r", namespace: "ns", creationTimestamp: "2026-11-30T09:33:31Z" } },
      progress,
    );
    expect(window.to).toBe(Date.parse("2026-11-30T09:10:00.250Z"));
  });
});
