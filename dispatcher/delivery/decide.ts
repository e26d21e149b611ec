import type { FailureReason } from "../../contract/records.ts";
import type { DeliverySettings } from "../../contract/routing-config.ts";
import { honourRetryAfter, retryDelayMs } from "./backoff.ts";
import type { AttemptResult } from "./http-client.ts";

export type Decision =
  | { kind: "sent" }
  | { kind: "retry"; delayMs: number }
  | { kind: "failed"; reason: FailureReason };

/**
 * What follows an attempt: SENT on a 2xx; FAILED at once when the receiver says the endpoint is
 * gone (410) or asks to stop (`webhook-delivery: abort-message`) or the destination is refused
 * (configuration, not luck, decides that); FAILED when the cycle's budget is spent; otherwise
 * another attempt after the backoff (lengthened by Retry-After on 429/503).
 */
export function decide(
  result: AttemptResult,
  attemptsInCycle: number,
  settings: DeliverySettings,
  random: () => number = Math.random,
): Decision {
  if (result.ok) return { kind: "sent" };
  if (result.statusCode === 410) return { kind: "failed", reason: "endpoint-gone" };
  if (result.abortRequested) return { kind: "failed", reason: "aborted-by-receiver" };
  if (result.errorCode === "destination_refused") return { kind: "failed", reason: "destination-refused" };
  if (attemptsInCycle >= settings.maxAttempts) return { kind: "failed", reason: "attempts-exhausted" };
  const delayMs = honourRetryAfter(
    retryDelayMs(settings.backoff, attemptsInCycle, random),
    result.retryAfterMs,
    settings.backoff.maxDelayMs,
  );
  return { kind: "retry", delayMs };
}
