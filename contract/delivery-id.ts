import { hash } from "node:crypto";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
const NAME_PART_MAX = 40;
const HASH_CHARS = 20; // 100 bits: collisions are not a practical concern

/**
 * The id of the delivery of one event to one webhook: `<webhook name>-<hash>`, e.g.
 * `orders-hook-k3mq…`. Deterministic from (namespace, event id, webhook name), so a repeated
 * fan-out of the same event creates no second delivery, and every attempt carries the same
 * `webhook-id`. It is a valid Kubernetes object name and label value (lowercase `[a-z0-9-]`,
 * starts and ends alphanumeric, ≤ 63 chars) because the operator names WebhookEvents after it.
 */
export function deliveryId(namespace: string, eventId: string, webhook: string): string {
  const digest = hash("sha256", `${namespace}\n${eventId}\n${webhook}`, "buffer");
  return `${readablePart(webhook)}-${base32(digest).slice(0, HASH_CHARS)}`;
}

/**
 * The id of a copy of a delivery for another webhook (a WebhookReplay's `targetWebhook`):
 * `<webhook name>-<hash>` as above, deterministic from the namespace, the original delivery, the
 * webhook and the token of the replay that copies it, so that the copy is made once per replay
 * (and generation) however often it is asked for, and a new replay makes a new copy.
 */
export function copyDeliveryId(
  namespace: string,
  originalId: string,
  webhook: string,
  token: string,
): string {
  const digest = hash("sha256", `copy\n${namespace}\n${originalId}\n${webhook}\n${token}`, "buffer");
  return `${readablePart(webhook)}-${base32(digest).slice(0, HASH_CHARS)}`;
}

export const DELIVERY_ID_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function readablePart(webhook: string): string {
  const cleaned = webhook
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .slice(0, NAME_PART_MAX)
    .replace(/^-+|-+$/g, "")
    .replace(/-{2,}/g, "-");
  return cleaned === "" ? "d" : cleaned;
}

function base32(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}
