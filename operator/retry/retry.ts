import type { Logger } from "pino";
import { readDelivery, requestRetry } from "../../contract/deliveries.ts";
import type { Keyspace } from "../../contract/keys.ts";
import { partitionOfDelivery } from "../../contract/partitioned-log.ts";
import { onePartition, type Partitions } from "../../contract/partitions.ts";
import { readRecordLimits } from "../../contract/record-limits.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { archivesToStore, requestRestore } from "../../contract/restore-requests.ts";
import { ANNOTATION_RETRY, type CachedWebhookEvent } from "../api/v1alpha1/index.ts";
import type { ApiWrites } from "../api-writes.ts";
import type { OperatorCaches } from "../caches.ts";
import type { Reconciler } from "../controller/controller.ts";
import type { EventInput } from "../controller/events.ts";
import { isNotFound } from "../controller/kube.ts";
import type { FairLimiter } from "../mirror/fair-limiter.ts";
import { WEBHOOK_EVENTS } from "../resources.ts";

// Retry by annotation, GitOps style: `webhooks.dataforce.io/retry=<token>` on a
// WebhookEvent asks the dispatcher for one more round of attempts. The token is handed
// to the dispatcher (which honours each token once per delivery, so a crash between
// the two steps below cannot retry twice) and then recorded in status.lastRetryToken;
// the annotation stays, so a GitOps tool sees no drift. A token is handled once,
// whether it was honoured or ignored; the mirror then shows QUEUED → SENT/FAILED.

/** The longest token status.lastRetryToken can hold. */
export const MAX_RETRY_TOKEN_LENGTH = 253;

export interface RetryReconcilerDeps {
  caches: OperatorCaches;
  redis: RedisClient;
  /** The global keys (record limits); the only partition unless `partitions` is given. */
  keys: Keyspace;
  /** The keyspace's partitions: the delivery is looked for in each. */
  partitions?: Partitions;
  writes: ApiWrites;
  /** The mirror's limiter: retries are WebhookEvent writes too. */
  limiter: Pick<FairLimiter, "take">;
  recordEvent(regarding: CachedWebhookEvent, input: EventInput): void;
  logger: Logger;
}

export function retryReconciler(deps: RetryReconcilerDeps): Reconciler {
  // Tokens handled but maybe not yet visible in the cache, by object uid.
  const handled = new Map<string, string>();
  return async ({ namespace, name }) => {
    const event = deps.caches.events.get(namespace, name);
    if (!event || event.metadata.deletionTimestamp) return;
    const token = event.metadata.annotations?.[ANNOTATION_RETRY];
    const uid = event.metadata.uid ?? name;
    if (!token || token === event.status?.lastRetryToken || handled.get(uid) === token) return;

    // The write budget first: a retry requeues work (and its status write follows), so a storm
    // of retry annotations in one namespace waits its turn instead of flooding the others.
    await deps.limiter.take(namespace);
    // The object's own name and namespace, not spec.deliveryId: a retry can only reach the
    // delivery this namespace's object mirrors (the CRD also ties the two together).
    const decision = await askForRetry(deps, { namespace, deliveryId: name }, token);
    deps.recordEvent(event, decision.event);
    deps.logger.info({ namespace, name, token, outcome: decision.outcome }, "retry request handled");

    try {
      await deps.writes.patchStatus(WEBHOOK_EVENTS, { namespace, name }, { lastRetryToken: token });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    handled.set(uid, token);
    if (handled.size > 10_000) handled.delete(handled.keys().next().value ?? "");
  };
}

/** What the dispatcher's log did with the retry request, and the Event that tells the user. */
export interface RetryDecision {
  /** requested: left for the dispatchers to bring back from the durable log store (restore-requests.ts) */
  outcome: "ignored" | "requeued" | "already-honoured" | "requested";
  event: EventInput;
}

/** Hands the token to the dispatcher's log (Redis only; no API writes). */
export async function askForRetry(
  deps: Pick<RetryReconcilerDeps, "redis" | "keys" | "partitions">,
  { namespace, deliveryId }: { namespace: string; deliveryId: string },
  token: string,
): Promise<RetryDecision> {
  const ignored = (note: string): RetryDecision => ({
    outcome: "ignored",
    event: { type: "Warning", reason: "RetryIgnored", action: "Retry", note },
  });
  if (token.length > MAX_RETRY_TOKEN_LENGTH) {
    return ignored(`retry token longer than ${MAX_RETRY_TOKEN_LENGTH} characters; use a shorter one`);
  }
  // The dispatcher's retention and status stream cap, not defaults of our own (a retry rewrites
  // the record and its expiry). Unknown before any dispatcher started: the reconcile retries.
  const limits = await readRecordLimits(deps.redis, deps.keys);
  const keys = await partitionOfDelivery(deps.redis, deliveryId, deps.partitions ?? onePartition(deps.keys));
  const { outcome } =
    keys === undefined
      ? { outcome: "not-found" as const }
      : await requestRetry(deps.redis, deliveryId, token, keys, limits, { namespace });
  switch (outcome) {
    case "requeued":
      return {
        outcome,
        event: {
          type: "Normal",
          reason: "RetryAccepted",
          action: "Retry",
          note: `retry ${token}: delivery requeued (QUEUED) with a fresh budget of attempts`,
        },
      };
    case "already-honoured":
      return {
        outcome,
        event: {
          type: "Normal",
          reason: "RetryAccepted",
          action: "Retry",
          note: `retry ${token} was already honoured for this delivery`,
        },
      };
    case "not-found": {
      // only the durable log store may still have it: the dispatchers bring it back and requeue it
      const home = (deps.partitions ?? onePartition(deps.keys)).of(namespace);
      if (await archivesToStore(deps.redis, home)) {
        await requestRestore(deps.redis, home, { deliveryId, token, namespace });
        return {
          outcome: "requested",
          event: {
            type: "Normal",
            reason: "RetryRequested",
            action: "Retry",
            note: `retry ${token}: the delivery is in the durable log store; the dispatchers bring it back and requeue it`,
          },
        };
      }
      return ignored(`retry ${token} ignored: the delivery is no longer in the dispatcher's log (expired)`);
    }
    case "not-failed": {
      const phase = keys && (await readDelivery(deps.redis, deliveryId, keys))?.phase;
      const why =
        phase === "SENT"
          ? "it was already delivered (SENT)"
          : "it is still QUEUED with attempts left; retry it once it is FAILED";
      return ignored(`retry ${token} ignored: only a FAILED delivery can be retried, and ${why}`);
    }
  }
}
