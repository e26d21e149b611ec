import { describe, expect, it } from "vitest";
import { IngestEventSchema, StreamEventSchema } from "./event-schema.ts";

const valid = { type: "job.created", namespace: "team-a", data: { jobId: "j-1" } };

describe("IngestEventSchema", () => {
  it("accepts a minimal event and optional id/occurredAt", () => {
    expect(IngestEventSchema.parse(valid)).toEqual(valid);
    expect(
      IngestEventSchema.parse({ ...valid, id: "evt-1", occurredAt: "2025-01-01T10:00:00+02:00" }).occurredAt,
    ).toBe("2025-01-01T10:00:00+02:00");
  });

  it.each([
    [{ ...valid, type: "job.exploded" }, "type"],
    [{ type: "job.created", data: {} }, "namespace"],
    [{ ...valid, namespace: "Team_A" }, "namespace"],
    [{ ...valid, data: [1, 2] }, "data"],
    [{ ...valid, data: "text" }, "data"],
    [{ ...valid, id: "" }, "id"],
    [{ ...valid, occurredAt: "yesterday" }, "occurredAt"],
    [{ ...valid, extra: 1 }, ""],
  ])("rejects %j at %s", (event, path) => {
    const result = IngestEventSchema.safeParse(event);
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.path.join(".")).toBe(path);
  });
});

describe("StreamEventSchema", () => {
  it("accepts stream fields with data as a JSON object string", () => {
    expect(StreamEventSchema.parse({ type: "job.created", namespace: "a", data: '{"x":1}' }).data).toBe(
      '{"x":1}',
    );
  });

  it.each(["[1]", "not json", "null", '"s"'])("rejects data %s", (data) => {
    expect(StreamEventSchema.safeParse({ type: "job.created", namespace: "a", data }).success).toBe(false);
  });
});
