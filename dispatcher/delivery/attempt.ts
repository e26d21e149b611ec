import { type Attempt, escapeField, StoredAttemptSchema } from "../../contract/records.ts";
import type { SettleOutcome } from "../../contract/scripts/settle-deliveries.ts";
import type { Decision } from "./decide.ts";
import type { AttemptResult, DeliveryRequest } from "./http-client.ts";
import { signatureHeader } from "./signer.ts";
import type { Work } from "./work.ts";

// One attempt, without I/O: the request it sends and the outcome it records. The delivery
// worker does the sending (DeliveryClient) and the recording (OutcomeRecorder).

/** Plain http to a namespace that did not allow it: refused without a request. */
export function refusedDestination(work: Work, now: number): AttemptResult | undefined {
  if (work.webhook.url.protocol !== "http:" || work.namespace.routing.allowPlainHttp) return undefined;
  return {
    startedAt: now,
    durationMs: 0,
    ok: false,
    errorCode: "destination_refused",
    error: "plain http is not allowed for this namespace (allowPlainHttp is false)",
    abortRequested: false,
  };
}

/**
 * The POST of one attempt: the webhook's own headers, then the ones it may not override, the
 * Standard Webhooks `webhook-id` / `-timestamp` / `-signature` (one signature per active secret).
 */
export function attemptRequest(work: Work, userAgent: string, timestampSeconds: number): DeliveryRequest {
  return {
    url: work.webhook.url,
    body: work.payload,
    timeoutMs: work.namespace.routing.delivery.timeoutMs,
    headers: {
      ...work.webhook.headers,
      "content-type": "application/json",
      "user-agent": userAgent,
      "webhook-id": work.deliveryId,
      "webhook-timestamp": String(timestampSeconds),
      "webhook-signature": signatureHeader(
        work.namespace.signingKeys,
        work.deliveryId,
        timestampSeconds,
        work.payload,
      ),
    },
  };
}

/** What the log keeps of an attempt. */
export function attemptRecord(work: Work, result: AttemptResult): Attempt {
  const attempt: Attempt = {
    number: work.attemptCount + 1,
    startedAt: new Date(result.startedAt).toISOString(),
    durationMs: result.durationMs,
  };
  if (result.statusCode !== undefined) attempt.statusCode = result.statusCode;
  if (result.errorCode !== undefined) attempt.errorCode = result.errorCode;
  if (result.error !== undefined) attempt.error = result.error;
  if (result.responseBodyPrefix !== undefined) attempt.responseBodyPrefix = result.responseBodyPrefix;
  return attempt;
}

/** The outcome to record for an attempt and what follows it (`now`: epoch ms, for the next due time). */
export function attemptOutcome(work: Work, attempt: Attempt, decision: Decision, now: number): SettleOutcome {
  const outcome: SettleOutcome = {
    entryId: work.entryId,
    id: work.deliveryId,
    version: work.version,
    kind: decision.kind,
    attempt: StoredAttemptSchema.encode(attempt),
  };
  if (work.webhook.url.href !== work.recordUrl) outcome.url = escapeField(work.webhook.url.href);
  if (decision.kind === "retry") outcome.due = String(now + decision.delayMs);
  else if (decision.kind === "failed") outcome.reason = decision.reason;
  return outcome;
}

/** Work returned to the shared schedule without an attempt, due at `due` (epoch ms). */
export function handBackOutcome(
  work: Pick<Work, "entryId" | "deliveryId" | "version">,
  due: number,
): SettleOutcome {
  return {
    entryId: work.entryId,
    id: work.deliveryId,
    version: work.version,
    kind: "defer",
    due: String(due),
  };
}
