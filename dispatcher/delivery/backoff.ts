import type { Backoff } from "../../contract/routing-config.ts";

/** ± share of the delay drawn at random, so retries of one outage do not arrive in lockstep. */
export const JITTER = 0.2;

/**
 * The delay before the next attempt after `failedAttempts` failures in this cycle (≥ 1):
 * initialDelay × multiplier^(failedAttempts-1), ± 20 % jitter, at most maxDelay.
 */
export function retryDelayMs(
  backoff: Backoff,
  failedAttempts: number,
  random: () => number = Math.random,
): number {
  const base = backoff.initialDelayMs * backoff.multiplier ** Math.max(0, failedAttempts - 1);
  const jittered = base * (1 - JITTER + 2 * JITTER * random());
  return Math.max(1, Math.min(backoff.maxDelayMs, Math.round(jittered)));
}

/** A receiver's Retry-After lengthens the delay, never beyond the schedule's maximum. */
export function honourRetryAfter(
  delayMs: number,
  retryAfterMs: number | undefined,
  maxDelayMs: number,
): number {
  if (retryAfterMs === undefined) return delayMs;
  return Math.min(maxDelayMs, Math.max(delayMs, retryAfterMs));
}

/** `Retry-After` as delay-seconds or an HTTP-date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
