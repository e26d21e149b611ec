/** What a receiver gets: a notification, not the record — ids and basic details; the REST API has the rest. */
export interface Notification {
  eventId: string;
  type: string;
  occurredAt: string;
  namespace: string;
  webhook: string;
  /** The producer's `data`, already serialized and validated as a JSON object. */
  dataJson: string;
}

/**
 * The exact body POSTed (and shown by the event log), shaped after Standard Webhooks'
 * `{type, timestamp, data}` with the event id, namespace and webhook name added. `data` is
 * spliced in as the producer serialized it (it was validated as one JSON object), which spares a
 * parse/serialize round per delivery.
 *
 * The event log stores the event's `data` once, in its event record, and builds each delivery's
 * payload again with this function when it is read (records.ts, format `d2`): it must stay a pure
 * function of its input. A change to the body's shape needs a new record format, so that
 * records already stored still show the bytes that were sent.
 */
export function notificationPayload(notification: Notification): string {
  return `{"id":${JSON.stringify(notification.eventId)},"type":${JSON.stringify(notification.type)},"timestamp":${JSON.stringify(notification.occurredAt)},"namespace":${JSON.stringify(notification.namespace)},"webhook":${JSON.stringify(notification.webhook)},"data":${notification.dataJson}}`;
}

/**
 * The producer's `data` as it is in a payload notificationPayload built from this notification
 * (the same bytes it was spliced in as), or undefined when the payload is not of that shape. The
 * durable log store keeps payloads, not events: an event's `data` is read back from one.
 */
export function notificationData(
  notification: Omit<Notification, "dataJson">,
  payload: string,
): string | undefined {
  const head = notificationPayload({ ...notification, dataJson: "" }).slice(0, -1);
  if (!payload.startsWith(head) || !payload.endsWith("}") || payload.length < head.length + 3)
    return undefined;
  return payload.slice(head.length, -1);
}
