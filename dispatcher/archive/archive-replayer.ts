import type { Logger } from "pino";
import {
  type ArchiveReplay,
  type ArchiveReplayProgress,
  type ArchiveReplayRequest,
  forgetArchiveReplay,
  readArchiveReplays,
  writeArchiveReplayProgress,
} from "../../contract/archive-replays.ts";
import { addDeliveries, readDeliveries, requestRetries } from "../../contract/deliveries.ts";
import { copyDelivery, type ResolvedCopyTarget, resolveCopyTarget } from "../../contract/delivery-copy.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { Partitions } from "../../contract/partitions.ts";
import type { RecordLimits } from "../../contract/record-limits.ts";
import { unpackDelivery } from "../../contract/records.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { restoredRecord, restoreForRetry } from "./archive-log.ts";
import type { ArchivedDelivery, ArchivedSummary, ArchiveStore } from "./archive-store.ts";

// The store's part of a WebhookReplay (contract/archive-replays.ts): the operator walked the Redis
// log, which with a store reaches back to the archive horizon only; the replica archiving the
// namespace's partition walks the rest here, newest first, one page of `maxPerSecond` rows a
// second, with the replay's token: a delivery only the store has is written back into Redis and
// requeued there (or copied to the replay's target webhook), as a retry of it would be.

export interface ArchiveReplayerOptions {
  redis: RedisClient;
  partitions: Partitions;
  store: ArchiveStore;
  limits: RecordLimits;
  logger: Logger;
}

/** Between two pages of one replay: its rate is `maxPerSecond` deliveries a second. */
const PAGE_INTERVAL_MS = 1_000;
/** A replay waiting for its target webhook looks again after this. */
const TARGET_RECHECK_MS = 10_000;
/** Rows read from the store per query, and at most per replay and round (passed over or taken). */
const SCAN_PAGE = 200;
const MAX_SCANNED_PER_ROUND = 5_000;
/** A finished walk the operator never came back for (its replay deleted meanwhile) is forgotten. */
const FORGET_DONE_AFTER_MS = 86_400_000;

export class ArchiveReplayer {
  readonly #options: ArchiveReplayerOptions;

  constructor(options: ArchiveReplayerOptions) {
    this.#options = options;
  }

  /** One page of each replay of the partition that is due; returns how many were due. */
  async serve(keys: Keyspace, now: number = Date.now()): Promise<number> {
    const { redis } = this.#options;
    let pages = 0;
    for (const replay of await readArchiveReplays(redis, keys)) {
      const { request, progress } = replay;
      if (progress.done) {
        if (now - progress.updatedAt > FORGET_DONE_AFTER_MS)
          await forgetArchiveReplay(redis, keys, request.token);
        continue;
      }
      if (now < progress.nextPageAt) continue;
      const next = await this.#page(keys, replay, now);
      await writeArchiveReplayProgress(redis, keys, request.token, next);
      pages++;
    }
    return pages;
  }

  async #page(
    keys: Keyspace,
    { request, progress }: ArchiveReplay,
    now: number,
  ): Promise<ArchiveReplayProgress> {
    const { redis, partitions, logger } = this.#options;
    let target: ResolvedCopyTarget | undefined;
    if (request.targetWebhook !== undefined) {
      const resolved = await resolveCopyTarget(
        redis,
        request.namespace,
        request.targetWebhook,
        partitions.global,
      );
      // the operator's condition says why (it checks the target too); nothing is sent meanwhile
      if (typeof resolved === "string")
        return { ...progress, nextPageAt: now + TARGET_RECHECK_MS, updatedAt: now };
      target = resolved;
    }
    const { ids, cursor, exhausted } = await this.#select(keys, request, progress);
    const resent =
      target === undefined
        ? await this.#requeue(keys, ids, request)
        : await this.#copy(keys, ids, request, target, now);
    logger.info(
      {
        namespace: request.namespace,
        replay: request.replay,
        matched: ids.length,
        requeued: resent,
        complete: exhausted,
      },
      "replay page from the durable log store done",
    );
    return {
      matched: progress.matched + ids.length,
      requeued: progress.requeued + resent,
      skipped: progress.skipped + ids.length - resent,
      cursor,
      done: exhausted,
      nextPageAt: now + PAGE_INTERVAL_MS,
      updatedAt: now,
    };
  }

  /**
   * The next deliveries of the replay's selection, newest first, at most `maxPerSecond`: the rows
   * created in [from, to] that the Redis walk could not list — created before the horizon it
   * stopped at, or with no record in Redis (expired since they were archived: the horizon lags
   * behind while an older delivery is still open). Rows the Redis walk listed are passed over
   * without counting against the rate, a bounded number per round.
   */
  async #select(
    keys: Keyspace,
    request: ArchiveReplayRequest,
    progress: ArchiveReplayProgress,
  ): Promise<{ ids: string[]; cursor: ArchiveReplayProgress["cursor"]; exhausted: boolean }> {
    const { store } = this.#options;
    const phase = request.phases.length === 1 ? request.phases[0] : undefined;
    const filter = {
      namespace: request.namespace,
      ...(request.webhook === undefined ? {} : { webhook: request.webhook }),
      ...(request.eventType === undefined ? {} : { eventType: request.eventType }),
      ...(phase === undefined ? {} : { phase }),
    };
    const ids: string[] = [];
    let cursor = progress.cursor;
    for (let scanned = 0; scanned < MAX_SCANNED_PER_ROUND; ) {
      // (created_at, id) < (to + 1 ms, ""): every row created at or before `to`
      const before = cursor === null ? { createdAt: request.to + 1, id: "" } : toKey(cursor);
      const rows = await store.list(filter, SCAN_PAGE, before, request.from);
      const inRedis = await this.#inRedis(
        keys,
        rows.map((row) => row.summary.id),
      );
      for (const [i, row] of rows.entries()) {
        cursor = [row.key.createdAt, row.key.id];
        scanned++;
        const listedByRedis = row.key.createdAt >= request.horizon && inRedis[i];
        if (listedByRedis || !(request.phases as readonly string[]).includes(row.summary.phase)) continue;
        ids.push(row.summary.id);
        if (ids.length === request.maxPerSecond) {
          // done when this was the very last row
          return { ids, cursor, exhausted: i === rows.length - 1 && rows.length < SCAN_PAGE };
        }
      }
      if (rows.length < SCAN_PAGE) return { ids, cursor, exhausted: true };
    }
    return { ids, cursor, exhausted: false };
  }

  async #inRedis(keys: Keyspace, ids: string[]): Promise<boolean[]> {
    if (ids.length === 0) return [];
    const pipeline = this.#options.redis.pipeline();
    for (const id of ids) pipeline.exists(keys.delivery(id));
    const replies = (await pipeline.exec()) ?? [];
    return ids.map((_, i) => Number(replies[i]?.[1] ?? 0) > 0);
  }

  /** Requeues with the replay's token (those only the store has written back first); returns how many are requeued. */
  async #requeue(keys: Keyspace, ids: string[], request: ArchiveReplay["request"]): Promise<number> {
    const { redis, limits } = this.#options;
    if (ids.length === 0) return 0;
    const archived = await this.#onlyInStore(keys, ids);
    // honoured already (by the Redis walk, or by this walk before a crash): counted as the
    // operator counts them, and not written back into Redis for nothing; a phase the replay does
    // not take stays in the store, and the retry script refuses it (counted as skipped)
    const honoured = new Set<string>();
    for (const [id, delivery] of archived) {
      const restored = await restoreForRetry(
        redis,
        keys,
        delivery,
        request.token,
        request.phases,
        limits.retentionMs,
      );
      if (restored === "already-honoured") honoured.add(id);
    }
    const outcomes = await requestRetries(
      redis,
      ids.filter((id) => !honoured.has(id)),
      request.token,
      keys,
      limits,
      { namespace: request.namespace },
      request.phases,
    );
    return honoured.size + outcomes.filter((o) => o === "requeued" || o === "already-honoured").length;
  }

  /** Copies to the target as new deliveries of their events; returns how many copies exist now. */
  async #copy(
    keys: Keyspace,
    ids: string[],
    request: ArchiveReplay["request"],
    target: ResolvedCopyTarget,
    now: number,
  ): Promise<number> {
    const { redis, limits } = this.#options;
    if (ids.length === 0) return 0;
    const reads = await readDeliveries(redis, ids, keys);
    const archived = await this.#onlyInStore(keys, ids, reads);
    const copies = ids.flatMap((id, i) => {
      const stored = archived.get(id);
      const original =
        reads[i]?.view ?? (stored === undefined ? undefined : unpackDelivery(restoredRecord(stored)));
      const header = original?.header;
      if (!original || header?.namespace !== request.namespace || header.eventType !== target.event)
        return [];
      if (header.webhook === target.name) return [];
      return [copyDelivery(id, original, target, request.token, now)];
    });
    // a copy made by an earlier walk (redone: a crash, an operator that lost the status) that has
    // left Redis since is in the store: made again, it would be sent twice. Redis's own check
    // (add-deliveries: only new ids) covers those still there
    const made = await this.#options.store.getMany(copies.map((copy) => copy.id));
    const fresh = copies.filter((copy) => !made.has(copy.id));
    return made.size + (await addDeliveries(redis, fresh, limits, keys, now)).length;
  }

  /** The archived deliveries among `ids` that Redis has no record of (`reads`: Redis's, when read already). */
  async #onlyInStore(
    keys: Keyspace,
    ids: string[],
    reads?: ReadonlyArray<unknown>,
  ): Promise<Map<string, ArchivedDelivery>> {
    const inRedis = reads === undefined ? await this.#inRedis(keys, ids) : reads.map((read) => Boolean(read));
    return this.#options.store.getMany(ids.filter((_, i) => !inRedis[i]));
  }
}

function toKey([createdAt, id]: [number, string]): ArchivedSummary["key"] {
  return { createdAt, id };
}
