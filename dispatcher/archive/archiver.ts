import type { Logger } from "pino";
import { z } from "zod";
import { PeriodicLoop } from "../../common/periodic-loop.ts";
import { readDeliveries, type StoredDeliveryRead } from "../../contract/deliveries.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { Partitions } from "../../contract/partitions.ts";
import type { RecordLimits } from "../../contract/record-limits.ts";
import { toDeliveryRecord } from "../../contract/records.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { forgetRestoreRequests, readRestoreRequests } from "../../contract/restore-requests.ts";
import { markArchivedScript } from "../../contract/scripts/mark-archived.ts";
import { raiseArchiveHorizonScript } from "../../contract/scripts/raise-archive-horizon.ts";
import { runScript } from "../../contract/scripts/script.ts";
import { answerMissing, forgetStatusRequests, readStatusRequests } from "../../contract/status-requests.ts";
import type { Metrics } from "../metrics.ts";
import { restoreIntoRedis } from "./archive-log.ts";
import type { ArchiveReplayer } from "./archive-replayer.ts";
import type { ArchivedDelivery, ArchiveStore } from "./archive-store.ts";

export interface ArchiverOptions {
  redis: RedisClient;
  partitions: Partitions;
  store: ArchiveStore;
  /** this replica's name: the holder of a partition's archive lease */
  consumer: string;
  /** how long an archived delivery stays in Redis (also one brought back to answer a status request) */
  hotWindowMs: number;
  /** the status stream's cap, for the entries that answer status requests */
  limits: Pick<RecordLimits, "statusStreamMaxLen">;
  batchSize: number;
  intervalMs: number;
  metrics: Metrics;
  logger: Logger;
  /**
   * Serves a retry the operator asked for a delivery only the store has (restore-requests.ts):
   * ArchivedLog.retry, which brings it back into Redis and requeues it, token once.
   */
  retry?: (id: string, token: string, scope: { namespace: string }) => Promise<{ outcome: string }>;
  /** Walks the store's part of the WebhookReplays of a partition (archive-replayer.ts). */
  replayer?: Pick<ArchiveReplayer, "serve">;
}

/** Restore requests served per partition and round at most. */
const RESTORES_PER_ROUND = 100;
/** Status requests answered per partition and round at most. */
const STATUS_ANSWERS_PER_ROUND = 100;

/** Batches written per partition and round at most, so one round never runs unbounded. */
const MAX_BATCHES_PER_ROUND = 20;
/** Index entries adopted per command. */
const ADOPT_PAGE = 1_000;
/** Open-set members checked per round for records that are gone (lost, expired). */
const OPEN_SWEEP = 100;

/**
 * Moves completed deliveries from Redis into the durable log store. Per partition, the replica
 * holding the partition's lease (a key with a TTL of a few rounds; the others skip it) takes the
 * oldest deliveries of the pending set, reads them, writes them in one multi-row upsert, and only
 * then marks them archived (mark-archived.ts: out of the pending set, TTL cut to the hot window).
 * Postgres down: the write fails, nothing is marked, the records stay in Redis and the backlog
 * grows (dataforce_dispatcher_archive_backlog); the next round tries again. A replica that dies
 * between the write and the mark leaves them pending: they are written again, which the upsert's
 * version guard makes harmless — so is a lease that two replicas briefly both believe they hold.
 * Each round also writes the deliveries still open past the hot window as they stand (so that they
 * stop holding the horizon back), raises the index horizon (Keyspace.archiveHorizon) and keeps the
 * day partitions.
 */
export class Archiver {
  readonly #options: ArchiverOptions;
  readonly #loop: PeriodicLoop;
  #partitionsCheckedAt = 0;
  #migrated = false;
  #adopted = false;

  constructor(options: ArchiverOptions) {
    this.#options = options;
    this.#loop = new PeriodicLoop({
      intervalMs: options.intervalMs,
      immediate: true,
      tick: () => this.runOnce(),
      onError: (error) => {
        options.metrics.archiveErrors.inc();
        options.logger.warn(
          { err: error },
          "archiving failed; the deliveries stay in Redis, next round retries",
        );
      },
    });
  }

  start(): void {
    this.#loop.start();
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  /** One round over every partition; throws the first failure after trying them all. */
  async runOnce(now: number = Date.now()): Promise<number> {
    const { partitions } = this.#options;
    let archived = 0;
    let failure: unknown;
    try {
      // the schema, once (the start may have found Postgres down)
      if (!this.#migrated) await this.#options.store.migrate();
      this.#migrated = true;
    } catch (error) {
      failure = error;
    }
    try {
      // the deliveries Redis had before the store was configured: pending too (once per keyspace)
      if (!this.#adopted) for (const keys of partitions.all) await this.adoptExisting(keys);
      this.#adopted = true;
    } catch (error) {
      failure ??= error;
    }
    for (const keys of failure === undefined ? partitions.all : []) {
      try {
        if (!(await this.#holdLease(keys))) continue;
      } catch (error) {
        failure ??= error;
        continue;
      }
      // each step on its own: one that fails does not hold up the others
      const steps = [
        async () => {
          archived += await this.archivePartition(keys);
        },
        () => this.writeLongOpen(keys, now),
        () => this.serveRestoreRequests(keys),
        () => this.#options.replayer?.serve(keys, now),
        () => this.serveStatusRequests(keys),
      ];
      for (const step of steps) {
        try {
          await step();
        } catch (error) {
          failure ??= error;
        }
      }
    }
    await this.#observeBacklog();
    // not before every delivery already in Redis is pending: the horizon would trim its index entry
    if (this.#adopted) await this.raiseHorizon(now);
    if (failure === undefined) await this.#keepPartitions(now);
    if (failure !== undefined) throw failure;
    return archived;
  }

  /**
   * Retries the operator asked for deliveries that only the store has: each brought back and
   * requeued (or found already honoured, not FAILED, not there), then forgotten. The store down:
   * they wait for the next round.
   */
  async serveRestoreRequests(keys: Keyspace): Promise<number> {
    const { redis, retry, logger } = this.#options;
    if (retry === undefined) return 0;
    const requests = await readRestoreRequests(redis, keys, RESTORES_PER_ROUND);
    const served: string[] = [];
    try {
      for (const request of requests) {
        await this.#servingOne(request.deliveryId, "retry", async () => {
          const { outcome } = await retry(request.deliveryId, request.token, {
            namespace: request.namespace,
          });
          logger.info(
            { deliveryId: request.deliveryId, namespace: request.namespace, outcome },
            "retry of an archived delivery served",
          );
        });
        served.push(request.entryId);
      }
    } finally {
      await forgetRestoreRequests(redis, keys, served);
    }
    return served.length;
  }

  /**
   * The mirror's questions about deliveries whose WebhookEvent is QUEUED but whose record is gone
   * from Redis (status-requests.ts). The store has it completed (in the request's namespace): its
   * record back into Redis for the hot window only (unless Redis has one again) and a status entry,
   * so the mirror shows its final state through its normal path. The store has none, or only as it
   * stood QUEUED: the answer "missing", for the mirror to mark it Lost. The store down: the
   * requests wait for the next round.
   */
  async serveStatusRequests(keys: Keyspace): Promise<number> {
    const { redis, store, hotWindowMs, limits, logger } = this.#options;
    const entries = await readStatusRequests(redis, keys, STATUS_ANSWERS_PER_ROUND);
    const answered: string[] = [];
    try {
      for (const { entryId, request } of entries) {
        if (request !== undefined)
          await this.#servingOne(request.deliveryId, "status request", async () => {
            const archived = await store.get(request.deliveryId);
            // a row written while the delivery was still QUEUED (writeLongOpen) is no final state:
            // its record gone from Redis, the delivery was lost while active
            const final = archived !== null && archived.record.phase !== "QUEUED";
            if (final && archived.record.namespace === request.namespace) {
              // with its status entry, which the mirror reads it on. Redis had one again (a retry
              // since, or this request served before): nothing written, its re-check reads that one
              await restoreIntoRedis(redis, keys, archived, hotWindowMs, limits);
              logger.info(
                {
                  deliveryId: request.deliveryId,
                  namespace: request.namespace,
                  phase: archived.record.phase,
                },
                "status request: archived delivery brought back for the WebhookEvent mirror",
              );
            } else {
              await answerMissing(redis, keys, request);
              logger.warn(
                { deliveryId: request.deliveryId, namespace: request.namespace },
                "status request: the durable log store does not have this delivery either (lost)",
              );
            }
          });
        answered.push(entryId);
      }
    } finally {
      await forgetStatusRequests(redis, keys, answered);
    }
    return answered.length;
  }

  /**
   * Serves one request. A request whose row cannot be read (written by another version: the
   * schema refuses it) fails the same way every round: it is logged, counted and given up, so that
   * it does not hold up the requests behind it. Any other failure (the store or Redis down) ends
   * the round's requests; they wait for the next round.
   */
  async #servingOne(deliveryId: string, what: string, serve: () => Promise<void>): Promise<void> {
    try {
      await serve();
    } catch (error) {
      if (!(error instanceof z.ZodError)) throw error;
      this.#options.metrics.archiveErrors.inc();
      this.#options.logger.error(
        { deliveryId, issues: error.issues.map((issue) => issue.path.join(".")) },
        `${what} given up: the durable log store's row of this delivery cannot be read`,
      );
    }
  }

  /** Archives the partition's pending deliveries, a batch at a time; returns how many. */
  async archivePartition(keys: Keyspace): Promise<number> {
    const { redis, store, batchSize, metrics } = this.#options;
    let archived = 0;
    for (let batch = 0; batch < MAX_BATCHES_PER_ROUND; batch++) {
      const ids = await redis.zrange(keys.archivePending, "0", String(batchSize - 1));
      if (ids.length === 0) break;
      const reads = await readDeliveries(redis, ids, keys);
      const deliveries: ArchivedDelivery[] = [];
      const marks: string[] = [];
      reads.forEach((read, i) => {
        const id = ids[i]!;
        const delivery = archivedOf(id, read);
        if (!delivery) {
          // no record: leaves the pending set. A record whose event record is gone (Redis lost or
          // evicted it) has no payload left to archive: it leaves the set too, counted
          if (read) metrics.archiveSkipped.inc();
          marks.push(id, read ? String(read.view.header.version) : "");
          return;
        }
        marks.push(id, String(delivery.record.version));
        if (delivery.record.phase !== "QUEUED") deliveries.push(delivery);
      });
      const started = performance.now();
      await store.write(deliveries);
      metrics.archiveWriteDuration.observe((performance.now() - started) / 1000);
      const removed = Number(
        await runScript(
          redis,
          markArchivedScript,
          [keys.archivePending, keys.archiveOpen, keys.deliveries],
          [keys.prefix, this.#options.hotWindowMs, Date.now(), ...marks],
        ),
      );
      metrics.deliveriesArchived.inc(deliveries.length);
      archived += deliveries.length;
      // a batch where nothing left the set (all changed meanwhile): the next round tries again
      if (ids.length < batchSize || removed === 0) break;
    }
    return archived;
  }

  /**
   * Writes the partition's deliveries still open (not completed) past the hot window to the store
   * as they stand, and takes them out of the open set, so that they stop holding the index horizon
   * back: a delivery held for days (an auto-paused webhook, an ordered queue behind a failing
   * head, an open circuit) would otherwise keep every namespace's log indexes in Redis from being
   * trimmed. The store lists them from then on (in their Redis state, while Redis has one); when
   * one completes, the settle script makes it pending and it is archived again, in its final
   * version (the upsert keeps the newer). Returns how many were written.
   */
  async writeLongOpen(keys: Keyspace, now: number): Promise<number> {
    const { redis, store, batchSize, hotWindowMs } = this.#options;
    const ids = await redis.zrange(
      keys.archiveOpen,
      "-inf",
      `(${now - hotWindowMs}`,
      "BYSCORE",
      "LIMIT",
      0,
      batchSize,
    );
    if (ids.length === 0) return 0;
    const reads = await readDeliveries(redis, ids, keys);
    const open = reads
      .map((read, i) => archivedOf(ids[i]!, read))
      .filter((delivery): delivery is ArchivedDelivery => delivery?.record.phase === "QUEUED");
    await store.write(open, now);
    // only once written. Those completed meanwhile are pending already (the settle script moved
    // them); those gone have nothing to write; one back in the set since (a retry of its final
    // version) has a row as well, which the store lists in its Redis state
    await redis.zrem(keys.archiveOpen, ...ids);
    return open.length;
  }

  /**
   * Adds every delivery of the partition's log indexes to the pending set (by creation time),
   * once: those made before the store was configured would otherwise never be archived — the
   * stream's, and those of an installation upgraded from format 1 that only its sorted set lists.
   * The archiver then sorts them out (a QUEUED one moves to the open set, one whose record is gone
   * leaves). Replicas may do it at the same time (ZADD NX); the mark is set only after a complete
   * pass.
   */
  async adoptExisting(keys: Keyspace): Promise<void> {
    const { redis } = this.#options;
    if ((await redis.exists(keys.archiveAdopted)) === 1) return;
    let start = "-";
    for (;;) {
      const entries = (await redis.xrange(keys.logAll, start, "+", "COUNT", ADOPT_PAGE)) as Array<
        [string, string[]]
      >;
      if (entries.length > 0) {
        const members: Array<string | number> = [];
        for (const [entryId, fields] of entries)
          members.push(Number(entryId.slice(0, entryId.indexOf("-"))), fields[1] ?? "");
        await redis.zadd(keys.archivePending, "NX", ...members);
      }
      if (entries.length < ADOPT_PAGE) break;
      start = `(${entries.at(-1)![0]}`;
    }
    await this.#adoptLegacyIndex(keys);
    await redis.set(keys.archiveAdopted, String(Date.now()));
  }

  /**
   * The format 1 index (Keyspace.legacyLog.all, scored by creation time), paged by score: a
   * fan-out gave all its deliveries one score, so a page goes on after those of its last score
   * already taken (an offset among them) rather than past that score.
   */
  async #adoptLegacyIndex(keys: Keyspace): Promise<void> {
    const { redis } = this.#options;
    let min = "-inf";
    let skip = 0;
    for (;;) {
      const reply = await redis.zrange(
        keys.legacyLog.all,
        min,
        "+inf",
        "BYSCORE",
        "LIMIT",
        skip,
        ADOPT_PAGE,
        "WITHSCORES",
      );
      const members: string[] = [];
      for (let i = 0; i < reply.length; i += 2) members.push(reply[i + 1]!, reply[i]!);
      if (members.length > 0) await redis.zadd(keys.archivePending, "NX", ...members);
      if (reply.length < ADOPT_PAGE * 2) break;
      const last = reply.at(-1)!;
      let ties = 0;
      for (let i = reply.length - 1; i > 0 && reply[i] === last; i -= 2) ties++;
      skip = last === min ? skip + ties : ties;
      min = last;
    }
  }

  /**
   * The horizon below which the event log indexes may be trimmed and the archive lists instead:
   * the hot window, but never past a delivery not archived yet (pending) or not completed (open).
   * Open members whose record is gone (Redis lost it) are dropped first, or they would hold it back.
   */
  async raiseHorizon(now: number = Date.now()): Promise<number> {
    const { redis, partitions, hotWindowMs } = this.#options;
    let horizon = now - hotWindowMs;
    for (const keys of partitions.all) {
      const open = await redis.zrange(keys.archiveOpen, "0", String(OPEN_SWEEP - 1));
      if (open.length > 0) {
        const pipeline = redis.pipeline();
        for (const id of open) pipeline.exists(keys.delivery(id));
        const exists = ((await pipeline.exec()) ?? []).map(([, count]) => Number(count));
        const gone = open.filter((_, i) => exists[i] === 0);
        if (gone.length > 0) await redis.zrem(keys.archiveOpen, ...gone);
      }
      for (const set of [keys.archivePending, keys.archiveOpen]) {
        const [, score] = await redis.zrange(set, "0", "0", "WITHSCORES");
        if (score !== undefined) horizon = Math.min(horizon, Number(score));
      }
    }
    return Number(
      await runScript(redis, raiseArchiveHorizonScript, [partitions.global.archiveHorizon], [horizon]),
    );
  }

  /** Holds (takes or renews) the partition's archive lease; false when another replica holds it. */
  async #holdLease(keys: Keyspace): Promise<boolean> {
    const { redis, consumer, intervalMs } = this.#options;
    const ttl = Math.max(5_000, intervalMs * 5);
    if ((await redis.set(keys.archiveLease, consumer, "PX", ttl, "NX")) === "OK") return true;
    if ((await redis.get(keys.archiveLease)) !== consumer) return false;
    await redis.pexpire(keys.archiveLease, ttl);
    return true;
  }

  async #observeBacklog(): Promise<void> {
    const { redis, partitions, metrics } = this.#options;
    const pipeline = redis.pipeline();
    for (const keys of partitions.all) pipeline.zcard(keys.archivePending);
    const replies = (await pipeline.exec()) ?? [];
    metrics.archiveBacklog.set(replies.reduce((sum, [, count]) => sum + Number(count ?? 0), 0));
  }

  /** Partitions for the days ahead and retention by dropping old days: once an hour is plenty. */
  async #keepPartitions(now: number): Promise<void> {
    if (now - this.#partitionsCheckedAt < 3_600_000) return;
    const { store, logger } = this.#options;
    await store.createAhead(now);
    const dropped = await store.dropExpired(now);
    if (dropped.length > 0)
      logger.info({ partitions: dropped }, "archive: dropped day partitions past retention");
    this.#partitionsCheckedAt = now;
  }
}

/**
 * A delivery as the store keeps it, from Redis's read of it; null when it has no record, or no
 * payload left (its event record gone: Redis lost or evicted it).
 */
function archivedOf(id: string, read: StoredDeliveryRead | null | undefined): ArchivedDelivery | null {
  if (!read) return null;
  const record = toDeliveryRecord(id, read.view, read.event);
  return record ? { record, retryTokens: read.view.header.retryTokens } : null;
}
