// The mirror's coalescing buffer: status stream entries read but not yet mirrored, by
// delivery. However many state changes of one delivery pile up while the mirror waits
// for its rate limit, they become one mirror write of the delivery's latest state,
// after which all of their stream entries are acknowledged together.

export interface PendingSnapshot {
  /** Stream entry ids to acknowledge once the delivery is mirrored. */
  entryIds: string[];
}

export class PendingDeliveries {
  private readonly waiting = new Map<string, string[]>();
  private readonly inFlight = new Map<string, string[]>();

  /** Deliveries with entries waiting (not counting those being mirrored right now). */
  get size(): number {
    return this.waiting.size;
  }

  /** Stream entries held, waiting or in flight. */
  get entries(): number {
    let total = 0;
    for (const ids of this.waiting.values()) total += ids.length;
    for (const ids of this.inFlight.values()) total += ids.length;
    return total;
  }

  /** Whether the delivery has entries waiting or being mirrored (or a recheck). */
  holds(deliveryId: string): boolean {
    return this.waiting.has(deliveryId) || this.inFlight.has(deliveryId);
  }

  /** Records an entry; returns true when the delivery had nothing waiting (it needs to be queued). */
  add(deliveryId: string, entryId: string): boolean {
    const ids = this.waiting.get(deliveryId);
    if (ids) {
      if (!ids.includes(entryId)) ids.push(entryId);
      return false;
    }
    if (this.inFlight.get(deliveryId)?.includes(entryId)) return false;
    this.waiting.set(deliveryId, [entryId]);
    return true;
  }

  /**
   * Asks for a delivery to be mirrored again without a stream entry (a check against the
   * dispatcher's record); returns true when it needs to be queued.
   */
  recheck(deliveryId: string): boolean {
    if (this.waiting.has(deliveryId) || this.inFlight.has(deliveryId)) return false;
    this.waiting.set(deliveryId, []);
    return true;
  }

  /** Takes the waiting entries of a delivery for mirroring; they stay counted as in flight until settled. */
  take(deliveryId: string): PendingSnapshot | undefined {
    const ids = this.waiting.get(deliveryId);
    if (!ids) return undefined;
    this.waiting.delete(deliveryId);
    this.inFlight.set(deliveryId, ids);
    return { entryIds: ids };
  }

  /** The entries were mirrored and acknowledged. */
  settle(deliveryId: string): void {
    this.inFlight.delete(deliveryId);
  }

  /** Mirroring failed: the entries wait again, before any that arrived meanwhile. */
  restore(deliveryId: string, snapshot: PendingSnapshot): void {
    this.inFlight.delete(deliveryId);
    const newer = this.waiting.get(deliveryId) ?? [];
    this.waiting.set(deliveryId, [
      ...snapshot.entryIds,
      ...newer.filter((id) => !snapshot.entryIds.includes(id)),
    ]);
  }

  /** Time (epoch ms, from the stream id) of the oldest entry held; undefined when empty. */
  oldestEntryMs(): number | undefined {
    let oldest: number | undefined;
    for (const map of [this.waiting, this.inFlight]) {
      for (const ids of map.values()) {
        for (const id of ids) {
          const ms = streamIdMs(id);
          if (oldest === undefined || ms < oldest) oldest = ms;
        }
      }
    }
    return oldest;
  }

  clear(): void {
    this.waiting.clear();
    this.inFlight.clear();
  }
}

/** The millisecond part of a Redis stream id (`<ms>-<seq>`). */
export function streamIdMs(id: string): number {
  const dash = id.indexOf("-");
  return Number(dash < 0 ? id : id.slice(0, dash));
}
