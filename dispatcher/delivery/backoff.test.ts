import { describe, expect, it } from "vitest";
import { honourRetryAfter, parseRetryAfter, retryDelayMs } from "./backoff.ts";

const backoff = { initialDelayMs: 1_000, maxDelayMs: 60_000, multiplier: 10 };

describe("retryDelayMs", () => {
  it("grows by the multiplier per failure, capped at the maximum", () => {
    const middle = () => 0.5; // no jitter
    expect(retryDelayMs(backoff, 1, middle)).toBe(1_000);
    expect(retryDelayMs(backoff, 2, middle)).toBe(10_000);
    expect(retryDelayMs(backoff, 3, middle)).toBe(60_000);
  });

  it("jitters by at most 20 % either way", () => {
    expect(retryDelayMs(backoff, 1, () => 0)).toBe(800);
    expect(retryDelayMs(backoff, 1, () => 0.999_999)).toBe(1_200);
  });

  it("works in milliseconds for tests", () => {
    expect(retryDelayMs({ initialDelayMs: 1, maxDelayMs: 5, multiplier: 2 }, 1, () => 0)).toBe(1);
  });
});

describe("Retry-After", () => {
  it("reads delay-seconds and HTTP dates", () => {
    expect(parseRetryAfter("7")).toBe(7_000);
    const now = Date.parse("2025-01-01T00:00:00Z");
    expect(parseRetryAfter("Wed, 01 Jan 2025 00:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
  });

  it("lengthens the delay but never beyond the schedule's maximum", () => {
    expect(honourRetryAfter(1_000, 5_000, 60_000)).toBe(5_000);
    expect(honourRetryAfter(10_000, 5_000, 60_000)).toBe(10_000);
    expect(honourRetryAfter(1_000, 3_600_000, 60_000)).toBe(60_000);
    expect(honourRetryAfter(1_000, undefined, 60_000)).toBe(1_000);
  });
});
