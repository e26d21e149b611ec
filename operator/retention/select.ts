// Which WebhookEvents of a namespace retention deletes: those older than the
// integration's `eventLog.retention`, then the oldest beyond `eventLog.maxEvents`.
// Pure, so the order rules are unit-tested.

export interface RetentionPolicy {
  retentionMs: number;
  maxEvents: number;
}

export interface RetainedEvent {
  name: string;
  /** metadata.creationTimestamp (RFC 3339, second precision). */
  createdAt: string;
}

export interface RetentionSelection {
  /** Names to delete, oldest first. */
  expired: string[];
  /** Names to delete because the namespace holds more than maxEvents, oldest first. */
  overflow: string[];
  /** creationTimestamp of the newest event selected (ms); nothing created before it should come back. */
  watermarkMs: number | undefined;
}

export function selectForRetention(
  events: readonly RetainedEvent[],
  policy: RetentionPolicy,
  nowMs: number,
): RetentionSelection {
  const ordered = [...events]
    .map((event) => ({ ...event, ms: Date.parse(event.createdAt) }))
    .sort((a, b) => a.ms - b.ms || a.name.localeCompare(b.name));
  const cutoff = nowMs - policy.retentionMs;
  const expired = ordered.filter((e) => e.ms < cutoff);
  const kept = ordered.filter((e) => !(e.ms < cutoff));
  const overflow = kept.slice(0, Math.max(0, kept.length - policy.maxEvents));
  const selected = [...expired, ...overflow];
  return {
    expired: expired.map((e) => e.name),
    overflow: overflow.map((e) => e.name),
    watermarkMs: selected.reduce<number | undefined>(
      (max, e) => (max === undefined || e.ms > max ? e.ms : max),
      undefined,
    ),
  };
}
