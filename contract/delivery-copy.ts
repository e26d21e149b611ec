import { copyDeliveryId } from "./delivery-id.ts";
import type { EventType } from "./event-types.ts";
import type { Keyspace } from "./keys.ts";
import { notificationPayload } from "./notification.ts";
import { DELIVERY_FORMAT, packDelivery, type StoredDelivery, type StoredDeliveryView } from "./records.ts";
import type { RedisClient } from "./redis-client.ts";
import { readWebhookRoute } from "./routing-config.ts";
import type { NewDelivery } from "./scripts/add-deliveries.ts";

/** The webhook a copy goes to, as its route says. */
export interface CopyTarget {
  name: string;
  uid: string;
  url: string;
  ordered: boolean;
  /** the namespace's attempt budget per cycle */
  maxAttempts: number;
}

/** A copy target as the dispatchers route it, and the event it subscribes to. */
export interface ResolvedCopyTarget extends CopyTarget {
  event: EventType;
}

/**
 * The webhook `name` of the namespace when it delivers (a WebhookReplay's targetWebhook);
 * otherwise why not, in words for a condition's message. `keys`: the global keys (the routing).
 */
export async function resolveCopyTarget(
  redis: RedisClient,
  namespace: string,
  name: string,
  keys: Keyspace,
): Promise<ResolvedCopyTarget | string> {
  const found = await readWebhookRoute(redis, namespace, name, keys);
  if (!found)
    return `targetWebhook ${name} is not delivering: no such Webhook in the namespace's routing (missing, not Ready, or no WebhookIntegration)`;
  if (!found.enabled)
    return `targetWebhook ${name} is not delivering: the namespace's integration is disabled`;
  if (found.route.paused) return `targetWebhook ${name} is not delivering: it is paused`;
  return {
    name,
    uid: found.route.uid,
    url: found.route.url,
    ordered: found.route.ordering === "Ordered",
    maxAttempts: found.delivery.maxAttempts,
    event: found.route.event,
  };
}

/**
 * A new delivery of the event of `original` to another webhook (a WebhookReplay's
 * `targetWebhook`, a replacement endpoint): QUEUED with a fresh budget, to the target's URL, with
 * an id of its own (copyDeliveryId; `token` is the replay's, also recorded in its retry tokens).
 * It takes the event's data where the original does: from the event record, or its own copy of
 * the data; an original of format 1 carried its body whole, which is rebuilt for the target (the
 * body names the webhook).
 */
export function copyDelivery(
  originalId: string,
  original: StoredDeliveryView,
  target: CopyTarget,
  token: string,
  now: number,
): NewDelivery {
  const source = original.header;
  const id = copyDeliveryId(source.namespace, originalId, target.name, token);
  const header: StoredDelivery = {
    format: DELIVERY_FORMAT,
    phase: "QUEUED",
    version: 0,
    attemptCount: 0,
    maxAttempts: target.maxAttempts,
    cycle: 1,
    cycleAttempts: 0,
    createdAt: now,
    updatedAt: now,
    eventId: source.eventId,
    namespace: source.namespace,
    webhook: target.name,
    webhookUid: target.uid,
    eventType: source.eventType,
    url: target.url,
    retryTokens: [token],
    occurredAt: source.occurredAt,
    ingestedAt: source.ingestedAt,
    data: source.data,
    payload: source.payload === undefined ? undefined : payloadFor(source.payload, source, target.name),
    ordered: target.ordered ? true : undefined,
  };
  return {
    id,
    namespace: source.namespace,
    webhook: target.name,
    eventId: source.eventId,
    record: packDelivery(header),
    ordered: target.ordered,
  };
}

/** A body sent to one webhook, rebuilt for another: the same event, the other webhook's name. */
function payloadFor(payload: string, source: StoredDelivery, webhook: string): string {
  const body = JSON.parse(payload) as { timestamp?: unknown; data?: unknown };
  return notificationPayload({
    eventId: source.eventId,
    type: source.eventType,
    occurredAt:
      typeof body.timestamp === "string" ? body.timestamp : new Date(source.ingestedAt ?? 0).toISOString(),
    namespace: source.namespace,
    webhook,
    dataJson: JSON.stringify(body.data ?? {}),
  });
}
