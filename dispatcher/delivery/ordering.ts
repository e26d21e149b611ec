import type { PreparedNamespace } from "../routing-table.ts";

/**
 * How long the head of a paused ordered webhook's queue waits before it is looked at again: its
 * work goes back to the schedule, attempts unspent, until the webhook is resumed.
 */
export const PAUSED_QUEUE_RECHECK_MS = 5_000;

/**
 * Whether work of a paused webhook waits instead of failing: it does for an ordered webhook,
 * whose queue pausing holds (failing the head would fail every delivery behind it in turn, out
 * of the user's control). An unordered webhook's work fails `webhook-paused`, as before.
 */
export function holdsPausedQueue(namespace: PreparedNamespace | undefined, webhookName: string): boolean {
  const webhook = namespace?.webhooks.get(webhookName);
  return webhook?.route.paused === true && webhook.route.ordering === "Ordered";
}
