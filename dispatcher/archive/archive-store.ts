import postgres from "postgres";
import { z } from "zod";
import type { DeliveryFilter, DeliverySummary } from "../../contract/delivery-log.ts";
import { type DeliveryRecord, DeliveryRecordSchema, FailureReasonSchema } from "../../contract/records.ts";

// The durable delivery log in PostgreSQL (issue 17): one table, range-partitioned by the day of
// the delivery's creation. By creation, not completion: a delivery's partition key never changes
// (a retried delivery completes again days later), so the upsert's ON CONFLICT always finds the
// row it replaces; retention is `DROP TABLE` of whole days. Writes are idempotent: a row is
// replaced only by a newer version of the same delivery, so the same batch written twice (two
// replicas, a retried write after a lost reply) changes nothing.

export const TABLE = "dataforce_deliveries";

/** What the store keeps of a delivery: the record the API shows, plus what a retry needs back. */
export const ArchivedDeliverySchema = z.object({
  record: DeliveryRecordSchema,
  /** honoured retry tokens (the latest last): a token honoured before archiving stays honoured */
  retryTokens: z.array(z.string()),
});
export type ArchivedDelivery = z.infer<typeof ArchivedDeliverySchema>;

/** A list position: the (creation time, id) of the last row shown, newest first. */
export interface ArchiveKey {
  createdAt: number;
  id: string;
}

export interface ArchiveStoreOptions {
  /** a libpq-style URL (`postgres://user:password@host:port/db?sslmode=…`) */
  url: string;
  /** connections in the pool */
  max?: number;
  /** how many days of partitions to keep (older ones are dropped) */
  retentionDays: number;
}

const MIGRATIONS: readonly string[] = [
  `create table if not exists ${TABLE} (
    created_at timestamptz not null,
    id text not null,
    namespace text not null,
    webhook text not null,
    event_type text not null,
    event_id text not null,
    phase text not null,
    version integer not null,
    attempt_count integer not null,
    max_attempts integer not null,
    cycle integer not null,
    url text not null,
    updated_at timestamptz not null,
    failure_reason text,
    record jsonb not null,
    retry_tokens text[] not null default '{}',
    archived_at timestamptz not null default now(),
    primary key (created_at, id)
  ) partition by range (created_at)`,
  // the API's filters, newest first (partitioned indexes: each day's partition gets its own)
  `create index if not exists ${TABLE}_ns on ${TABLE} (namespace, created_at desc, id desc)`,
  `create index if not exists ${TABLE}_ns_webhook on ${TABLE} (namespace, webhook, created_at desc, id desc)`,
  `create index if not exists ${TABLE}_ns_phase on ${TABLE} (namespace, phase, created_at desc, id desc)`,
  `create index if not exists ${TABLE}_phase on ${TABLE} (phase, created_at desc, id desc)`,
  `create index if not exists ${TABLE}_event_type on ${TABLE} (event_type, created_at desc, id desc)`,
  `create index if not exists ${TABLE}_id on ${TABLE} (id)`,
  // an event's deliveries: GET /v1/events/:namespace/:id once Redis no longer has the event record
  `create index if not exists ${TABLE}_ns_event on ${TABLE} (namespace, event_id)`,
];

/**
 * The most rows an event's view reads: one per webhook subscribed when it was fanned out, and the
 * copies WebhookReplays made of them.
 */
export const MAX_EVENT_DELIVERIES = 1_000;

const DAY_MS = 86_400_000;

/** PostgreSQL could not answer a read (down, unreachable): the API says 503, the caller retries. */
export class ArchiveUnavailableError extends Error {
  override readonly name = "ArchiveUnavailableError";
  constructor(cause: unknown) {
    super("the durable log store (PostgreSQL) is unavailable", { cause });
  }
}

/** Runs a read, its failure as ArchiveUnavailableError. */
async function reading<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw new ArchiveUnavailableError(error);
  }
}

/** `dataforce_deliveries_p20261130` for the day holding `ms` (UTC). */
export function partitionName(ms: number): string {
  return `${TABLE}_p${new Date(ms).toISOString().slice(0, 10).replaceAll("-", "")}`;
}

function dayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

export class ArchiveStore {
  readonly sql: postgres.Sql;
  readonly #retentionDays: number;
  /** partitions known to exist (created here or seen) */
  readonly #partitions = new Set<string>();

  constructor(options: ArchiveStoreOptions) {
    this.sql = postgres(options.url, {
      max: options.max ?? 4,
      onnotice: () => {},
      connect_timeout: 10,
      // never print the DSN (it holds the password): errors carry the server's message only
      debug: false,
    });
    this.#retentionDays = options.retentionDays;
  }

  /** Creates the table and its indexes (idempotent; replicas serialise on an advisory lock). */
  async migrate(): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext(${TABLE}))`;
      for (const statement of MIGRATIONS) await tx.unsafe(statement);
    });
  }

  /** The day partitions that exist, oldest first, as epoch ms of their day. */
  async partitionDays(): Promise<number[]> {
    const rows = await this.sql<{ name: string }[]>`
      select c.relname as name from pg_inherits i
      join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
      where p.relname = ${TABLE} and c.relkind = 'r'`;
    const days: number[] = [];
    for (const { name } of rows) {
      const match = /_p(\d{4})(\d{2})(\d{2})$/.exec(name);
      if (match) days.push(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
      this.#partitions.add(name);
    }
    return days.sort((a, b) => a - b);
  }

  /** Creates the partitions of the days holding these times (and caches that they exist). */
  async ensurePartitions(times: Iterable<number>): Promise<void> {
    const days = new Set<number>();
    for (const ms of times) if (!this.#partitions.has(partitionName(ms))) days.add(dayStart(ms));
    for (const day of days) {
      const name = partitionName(day);
      const from = new Date(day).toISOString();
      const to = new Date(day + DAY_MS).toISOString();
      try {
        await this.sql.unsafe(
          `create table if not exists ${name} partition of ${TABLE} for values from ('${from}') to ('${to}')`,
        );
      } catch (error) {
        // another replica created it at the same moment (duplicate table, or its catalog row)
        const code = (error as { code?: string }).code;
        if (code !== "42P07" && code !== "23505") throw error;
      }
      this.#partitions.add(name);
    }
  }

  /** Today's partition and the next `aheadDays` ones, so the first writes of a day find theirs. */
  async createAhead(now: number, aheadDays = 2): Promise<void> {
    const times: number[] = [];
    for (let day = 0; day <= aheadDays; day++) times.push(now + day * DAY_MS);
    await this.ensurePartitions(times);
  }

  /** The oldest creation time still kept: deliveries made before it are not archived any more. */
  retentionStart(now: number): number {
    return dayStart(now) - (this.#retentionDays - 1) * DAY_MS;
  }

  /** Drops the day partitions older than the retention; returns their names. */
  async dropExpired(now: number): Promise<string[]> {
    const start = this.retentionStart(now);
    const dropped: string[] = [];
    for (const day of await this.partitionDays()) {
      if (day >= start) continue;
      const name = partitionName(day);
      await this.sql.unsafe(`drop table if exists ${name}`);
      this.#partitions.delete(name);
      dropped.push(name);
    }
    return dropped;
  }

  /**
   * Writes deliveries in one multi-row upsert: a row is replaced only by a newer version of the
   * same delivery (the same creation time and id). Deliveries made before the retention start are
   * left out (their day is dropped, or about to be). Returns how many were written or kept.
   */
  async write(deliveries: readonly ArchivedDelivery[], now: number = Date.now()): Promise<number> {
    const start = this.retentionStart(now);
    const kept = deliveries.filter(({ record }) => Date.parse(record.createdAt) >= start);
    if (kept.length === 0) return 0;
    await this.ensurePartitions(kept.map(({ record }) => Date.parse(record.createdAt)));
    const rows = kept.map(({ record, retryTokens }) => ({
      created_at: record.createdAt,
      id: record.id,
      namespace: record.namespace,
      webhook: record.webhook,
      event_type: record.eventType,
      event_id: record.eventId,
      phase: record.phase,
      version: record.version,
      attempt_count: record.attempts.at(-1)?.number ?? 0,
      max_attempts: record.maxAttempts,
      cycle: record.cycle,
      url: record.url,
      updated_at: record.updatedAt,
      failure_reason: record.failureReason ?? null,
      record: this.sql.json(record as unknown as postgres.JSONValue),
      retry_tokens: this.sql.array(retryTokens),
    }));
    await this.sql`
      insert into ${this.sql(TABLE)} ${this.sql(rows)}
      on conflict (created_at, id) do update set
        phase = excluded.phase, version = excluded.version, attempt_count = excluded.attempt_count,
        max_attempts = excluded.max_attempts, cycle = excluded.cycle, url = excluded.url,
        updated_at = excluded.updated_at, failure_reason = excluded.failure_reason,
        record = excluded.record, retry_tokens = excluded.retry_tokens, archived_at = now()
      where ${this.sql(TABLE)}.version < excluded.version`;
    return kept.length;
  }

  /** Newest first, after `before` (exclusive), matching the filter; none created before `since` (epoch ms). */
  async list(
    filter: DeliveryFilter,
    limit: number,
    before?: ArchiveKey,
    since?: number,
  ): Promise<ArchivedSummary[]> {
    const sql = this.sql;
    const conditions = [
      since === undefined ? sql`true` : sql`created_at >= ${new Date(since)}`,
      filter.namespace === undefined ? sql`true` : sql`namespace = ${filter.namespace}`,
      filter.webhook === undefined ? sql`true` : sql`webhook = ${filter.webhook}`,
      filter.eventType === undefined ? sql`true` : sql`event_type = ${filter.eventType}`,
      filter.phase === undefined ? sql`true` : sql`phase = ${filter.phase}`,
      before === undefined
        ? sql`true`
        : sql`(created_at, id) < (${new Date(before.createdAt)}, ${before.id})`,
    ];
    const where = conditions.reduce((all, condition) => sql`${all} and ${condition}`);
    const rows = await reading(
      () => sql<SummaryRow[]>`
        select id, event_id, event_type, namespace, webhook, url, phase, attempt_count, max_attempts,
          cycle, created_at, updated_at, failure_reason
        from ${sql(TABLE)} where ${where}
        order by created_at desc, id desc limit ${limit}`,
    );
    return rows.map(toSummary);
  }

  /** The latest archived delivery with this id (the newest creation: an id made again after its event's window). */
  async get(id: string): Promise<ArchivedDelivery | null> {
    const rows = await reading(
      () => this.sql<{ record: unknown; retry_tokens: string[] }[]>`
        select record, retry_tokens from ${this.sql(TABLE)} where id = ${id}
        order by created_at desc limit 1`,
    );
    const row = rows[0];
    if (!row) return null;
    return ArchivedDeliverySchema.parse({ record: row.record, retryTokens: row.retry_tokens });
  }

  /** `get` for many ids in one query; those the store does not have are absent from the map. */
  async getMany(ids: readonly string[]): Promise<Map<string, ArchivedDelivery>> {
    const found = new Map<string, ArchivedDelivery>();
    if (ids.length === 0) return found;
    const rows = await reading(
      () => this.sql<{ id: string; record: unknown; retry_tokens: string[] }[]>`
        select distinct on (id) id, record, retry_tokens from ${this.sql(TABLE)}
        where id = any(${this.sql.array([...ids])}) order by id, created_at desc`,
    );
    for (const row of rows)
      found.set(row.id, ArchivedDeliverySchema.parse({ record: row.record, retryTokens: row.retry_tokens }));
    return found;
  }

  /**
   * The records of an event's deliveries (an event id made again after its idempotency window has
   * the rows of each time), newest first, at most `limit`.
   */
  async eventDeliveries(
    namespace: string,
    eventId: string,
    limit = MAX_EVENT_DELIVERIES,
  ): Promise<DeliveryRecord[]> {
    const rows = await reading(
      () => this.sql<{ record: unknown }[]>`
        select record from ${this.sql(TABLE)} where namespace = ${namespace} and event_id = ${eventId}
        order by created_at desc, id limit ${limit}`,
    );
    return rows.map((row) => DeliveryRecordSchema.parse(row.record));
  }

  async count(): Promise<number> {
    const [row] = await this.sql<{ n: string }[]>`select count(*) as n from ${this.sql(TABLE)}`;
    return Number(row?.n ?? 0);
  }

  close(): Promise<void> {
    return this.sql.end({ timeout: 5 });
  }
}

interface SummaryRow {
  id: string;
  event_id: string;
  event_type: string;
  namespace: string;
  webhook: string;
  url: string;
  phase: string;
  attempt_count: number;
  max_attempts: number;
  cycle: number;
  created_at: Date;
  updated_at: Date;
  failure_reason: string | null;
}

/** A listing's row, with its position for the cursor. */
export interface ArchivedSummary {
  summary: DeliverySummary;
  key: ArchiveKey;
}

const SummaryPhaseSchema = DeliveryRecordSchema.shape.phase;

function toSummary(row: SummaryRow): ArchivedSummary {
  const summary: DeliverySummary = {
    id: row.id,
    eventId: row.event_id,
    eventType: row.event_type,
    namespace: row.namespace,
    webhook: row.webhook,
    url: row.url,
    phase: SummaryPhaseSchema.parse(row.phase),
    attempts: row.attempt_count,
    maxAttempts: row.max_attempts,
    cycle: row.cycle,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
  if (row.failure_reason !== null && summary.phase === "FAILED")
    summary.failureReason = FailureReasonSchema.parse(row.failure_reason);
  return { summary, key: { createdAt: row.created_at.getTime(), id: row.id } };
}

/** The record as the store keeps it, from a delivery read in Redis. */
export function toArchived(record: DeliveryRecord, retryTokens: readonly string[]): ArchivedDelivery {
  return { record, retryTokens: [...retryTokens] };
}
