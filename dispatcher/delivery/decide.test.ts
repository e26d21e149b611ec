import { describe, expect, it } from "vitest";
import { DeliverySettingsSchema } from "../../contract/routing-config.ts";
import { decide } from "./decide.ts";
import type { AttemptResult } from "./http-client.ts";

const settings = DeliverySettingsSchema.parse({
  maxAttempts: 3,
  backoff: { initialDelayMs: 100, maxDelayMs: 10_000, multiplier: 2 },
});
const noJitter = () => 0.5;
const failed = (extra: Partial<AttemptResult> = {}): AttemptResult => ({
  startedAt: 0,
  durationMs: 1,
  ok: false,
  statusCode: 500,
  errorCode: "http_status",
  abortRequested: false,
  ...extra,
});

describe("decide", () => {
  it("a 2xx is SENT", () => {
    expect(decide({ ...failed(), ok: true, statusCode: 204 }, 1, settings)).toEqual({ kind: "sent" });
  });

  it("retries with backoff until the cycle's budget is spent, then FAILED", () => {
    expect(decide(failed(), 1, settings, noJitter)).toEqual({ kind: "retry", delayMs: 100 });
    expect(decide(failed(), 2, settings, noJitter)).toEqual({ kind: "retry", delayMs: 200 });
    expect(decide(failed(), 3, settings, noJitter)).toEqual({ kind: "failed", reason: "attempts-exhausted" });
  });

  it("stops at once on 410 Gone, an abort request or a refused destination", () => {
    expect(decide(failed({ statusCode: 410 }), 1, settings)).toEqual({
      kind: "failed",
      reason: "endpoint-gone",
    });
    expect(decide(failed({ abortRequested: true }), 1, settings)).toEqual({
      kind: "failed",
      reason: "aborted-by-receiver",
    });
    expect(decide(failed({ errorCode: "destination_refused", statusCode: undefined }), 1, settings)).toEqual({
      kind: "failed",
      reason: "destination-refused",
    });
  });

  it("waits at least Retry-After on 429/503, within the maximum", () => {
    expect(decide(failed({ statusCode: 429, retryAfterMs: 2_000 }), 1, settings, noJitter)).toEqual({
      kind: "retry",
      delayMs: 2_000,
    });
    expect(decide(failed({ statusCode: 503, retryAfterMs: 99_000 }), 1, settings, noJitter)).toEqual({
      kind: "retry",
      delayMs: 10_000,
    });
  });
});
