/**
 * Every Redis key of one deployment. All of them carry the same hash tag (`{dataforce}` by
 * default) so they live in one Redis Cluster slot: the Lua scripts touch several of them
 * atomically, which Cluster only allows within a slot. The tag is also the unit of isolation:
 * tests give each case its own tag, and two deployments can share a Redis with different ones.
 *
 * The Lua scripts in `scripts/` build the per-record keys (`delivery:<id>`, `event:…`, `seen:…`,
 * `logs:ns:…`) from `prefix` themselves, BullMQ style; `keys.test.ts` pins both spellings together.
 */
export interface Keyspace {
  /** `{tag}:` — every key below starts with it. */
  readonly prefix: string;

  /**
   * The ingest stream, for producers that append events directly (`XADD`; the `POST /v1/events`
   * API fans out at once instead). One entry per business event with these string fields:
   *   type        one of EVENT_TYPES, e.g. `job.created`                      (required)
   *   namespace   the Kubernetes namespace (= account) the event belongs to   (required)
   *   id          the producer's event id, `[A-Za-z0-9][A-Za-z0-9._:-]{0,127}`; a repeated id in
   *               the same namespace within the idempotency window is dropped (optional; the
   *               stream entry id is used when absent, which disables de-duplication)
   *   occurredAt  ISO-8601 time the business event happened (optional; default: ingest time)
   *   data        a JSON object as a string: ids and basic details only      (required)
   * Entries that do not match are moved to `deadLetters` and counted, never delivered.
   */
  readonly events: string;
  /**
   * Ingest entries that were not fanned out, kept for inspection (capped): `entryId`, `reason`,
   * then the entry's own fields. Invalid entries, and entries whose fan-out kept failing.
   */
  readonly deadLetters: string;
  /**
   * How often the fan-out of one ingest entry, alone, failed (a counter with a TTL): in Redis, so
   * that a replica that claims the entry goes on counting where the previous one stopped.
   */
  fanoutFailures(entryId: string): string;
  /**
   * Work queue: one entry per attempt that is due now: `{ id: <deliveryId> }`, and for a first
   * attempt also what the attempt needs, so the worker skips reading the record (the version
   * check when the outcome is recorded still guards): `a` = version, namespace, webhook,
   * ingestedAt and URL joined by "\n" (URL last: it is the only part that could hold one), and
   * `p` = the payload. Packed, because every field of a reply costs the client a decode.
   */
  readonly deliveries: string;
  /** Sorted set of delivery ids scored by the epoch ms at which their next attempt is due. */
  readonly scheduled: string;
  /**
   * The ordered queue of a webhook with `ordering: Ordered`: a list of its QUEUED delivery ids in
   * fan-out order (a retried one joins the tail). Only its head has work (in the work queue, in
   * flight or in `scheduled`); settling the head SENT or FAILED queues the next one's work, in the
   * same script (fragments.ts, "ordered-queue"). Deliveries of unordered webhooks never touch it.
   */
  orderedQueue(namespace: string, webhook: string): string;
  /** Set of the ordered queues that hold deliveries (for the queue-length gauge, without SCAN). */
  readonly orderedQueues: string;
  /**
   * Capped stream (XADD MAXLEN ~) with one entry whenever a delivery's phase or attempt count
   * changes (`delivery-status`). Fields (all strings): `deliveryId`, `phase` (QUEUED|SENT|FAILED),
   * `namespace`, `webhook` (empty when it is the delivery id's readable part), `eventId`,
   * `attempts` (attempts made so far, all cycles), `failureReason` (empty but on FAILED); the time
   * of the change is the entry id's, unless `at` (ISO) says it (an entry moved from format 1's stream,
   * or one for a record brought back from the durable log store). Decode with `parseStatusEntry`, read the full record with
   * `readDelivery`. See StatusEntrySchema.
   */
  readonly status: string;
  /**
   * The status stream of format 1 (`status`: every entry also had `eventType` and `at`), which
   * operators of that version read and dispatchers of that version write. The operator's leader
   * moves what is left in it to `status` (see forward-legacy-status.ts), then deletes it.
   */
  readonly legacyStatus: string;

  /** Hash: namespace → JSON NamespaceRouting (written by the operator). */
  readonly routing: string;
  /**
   * Hash of the RecordLimits the dispatchers run with (`retentionMs`, `statusStreamMaxLen`),
   * published by every dispatcher at start and every maintenance round, so that the operator's
   * writes (retry) apply the same.
   */
  readonly recordLimits: string;
  /**
   * A token the operator's leader writes beside the routing and watches: when it is gone, Redis
   * lost its data (restart without persistence, failover to an empty replica, flush) and the
   * routing must be written again at once, not at the next resync.
   */
  readonly routingEpoch: string;
  /**
   * Hash of endpoint health, field `<namespace>/<webhook>` → JSON EndpointHealth
   * (endpoint-health.ts): written by dispatchers (throttled), read by the operator's leader.
   */
  readonly endpointHealth: string;
  /** Integer bumped by every routing write; dispatchers poll it. */
  readonly routingRevision: string;
  /** Pub/Sub channel announcing a new routing revision (the message is the revision). */
  readonly routingChannel: string;

  /** Delivery record: a packed string (StoredDeliverySchema; a hash in format 1, DeliveryHashSchema). */
  delivery(id: string): string;
  /**
   * Event record: a packed string (StoredEventSchema; JSON in format 1): what every delivery of
   * the event shares (data, times) and the event id's idempotency marker.
   */
  event(namespace: string, eventId: string): string;
  /**
   * Idempotency marker of format 1: holds the ingest stream entry id of an event's first copy.
   * Markers now live in the event record; these are still honoured until their window ends.
   */
  seen(namespace: string, eventId: string): string;

  /**
   * Event log indexes: streams of `d` = delivery id, whose entry ids are the creation times
   * (`<epoch ms>-<n>`): all deliveries, per namespace, per webhook. Phase and event type have no
   * index of their own: each would cost writes on every delivery's hot path for listings that
   * the namespace index (plus a filter on the records) serves. A stream entry costs about 40 B,
   * a sorted set member about 130 B.
   */
  readonly logAll: string;
  logNamespace(namespace: string): string;
  logWebhook(namespace: string, webhook: string): string;
  /** Set of the per-namespace index keys, so retention can trim them without SCAN. */
  readonly logIndexes: string;
  /**
   * FAILED deliveries (triage, bulk retry): a sorted set of delivery ids scored by creation time,
   * since a retry takes a delivery out of it again.
   */
  readonly logFailed: string;
  /**
   * Durable log store (a Postgres archive, when the dispatchers have one; unused otherwise).
   * `archivePending`: completed deliveries (SENT/FAILED) not yet archived in their latest version,
   * a sorted set scored by creation time, added by the settle script. `archiveOpen`: deliveries
   * not completed since they were made (QUEUED), scored by creation time, added by the fan-out and
   * removed by the settle: with the pending set it bounds how far back the event log indexes must
   * still reach in Redis. `archiveHorizon` (partition 0's counts for all): epoch ms below which
   * the indexes are trimmed and the archive lists the deliveries instead (only ever raised).
   * `archiveLease`: which replica archives this partition (a short lease: one writer at a time).
   * `archiveAdopted`: set once the deliveries made before the store was configured (the log index)
   * were all added to the pending set, so they are archived too (and it says the store is on).
   * `archiveRestore`: retries asked for deliveries that only the store still has (the operator
   * cannot read it): a stream of {id, token, namespace} the archiving replica serves.
   * `archiveReplays`: WebhookReplays whose walk goes on in the store (archive-replays.ts), a hash
   * of replay token → request; `archiveReplayProgress`: token → how far the archiving replica got.
   * `archiveStatusRequests`: what became of a delivery whose WebhookEvent is still QUEUED but whose
   * record is gone from Redis (status-requests.ts): a stream of {id, namespace} the archiving
   * replica answers, with the record back for the hot window and a status entry when the store has
   * it, else with `archiveMissing(namespace, id)`, a marker (1 h TTL) the mirror marks it Lost on.
   */
  readonly archivePending: string;
  readonly archiveOpen: string;
  readonly archiveHorizon: string;
  readonly archiveLease: string;
  readonly archiveAdopted: string;
  readonly archiveRestore: string;
  readonly archiveReplays: string;
  readonly archiveReplayProgress: string;
  readonly archiveStatusRequests: string;
  archiveMissing(namespace: string, id: string): string;
  /**
   * The indexes of format 1, sorted sets scored by creation time: read beside the streams until
   * retention has emptied them.
   */
  readonly legacyLog: {
    readonly all: string;
    namespace(namespace: string): string;
    webhook(namespace: string, webhook: string): string;
    readonly indexes: string;
  };
}

export const CONSUMER_GROUPS = {
  /** Dispatchers reading `events` to create deliveries. */
  fanout: "fanout",
  /** Dispatchers reading `deliveries` to make attempts. */
  delivery: "delivery",
  /** The operator's leader reading `status` to mirror delivery state into WebhookEvents. */
  mirror: "operator-mirror",
} as const;

/** The keyspace of one deployment; `tag` is its settings' keyTag (`dataforce` by default). */
export function keyspace(tag: string): Keyspace {
  assertKeyTag(tag);
  return keyspaceUnder(`{${tag}}:`);
}

/** A valid key tag: the characters of a hash tag's content, never `{`, `}` or `:` (partitions.ts). */
export function assertKeyTag(tag: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(tag)) throw new Error(`invalid Redis key tag ${JSON.stringify(tag)}`);
}

/**
 * The keys under `prefix` (`{<hash tag>}:`), each spelled once; partitions.ts builds the keyspace
 * of each partition with it.
 */
export function keyspaceUnder(prefix: string): Keyspace {
  return {
    prefix,
    events: `${prefix}events`,
    deadLetters: `${prefix}events:dead`,
    fanoutFailures: (entryId) => `${prefix}events:fanout-failures:${entryId}`,
    deliveries: `${prefix}deliveries`,
    scheduled: `${prefix}scheduled`,
    orderedQueue: (namespace, webhook) => `${prefix}ordered:${namespace}:${webhook}`,
    orderedQueues: `${prefix}ordered-queues`,
    status: `${prefix}delivery-status`,
    legacyStatus: `${prefix}status`,
    routing: `${prefix}routing`,
    recordLimits: `${prefix}record-limits`,
    endpointHealth: `${prefix}endpoint-health`,
    routingRevision: `${prefix}routing:revision`,
    routingEpoch: `${prefix}routing:epoch`,
    routingChannel: `${prefix}routing:changed`,
    delivery: (id) => `${prefix}delivery:${id}`,
    event: (namespace, eventId) => `${prefix}event:${namespace}:${eventId}`,
    seen: (namespace, eventId) => `${prefix}seen:${namespace}:${eventId}`,
    logAll: `${prefix}logs`,
    logNamespace: (namespace) => `${prefix}logs:ns:${namespace}`,
    logWebhook: (namespace, webhook) => `${prefix}logs:ns:${namespace}:webhook:${webhook}`,
    logIndexes: `${prefix}logs:indexes`,
    logFailed: `${prefix}log:failed`,
    archivePending: `${prefix}archive:pending`,
    archiveOpen: `${prefix}archive:open`,
    archiveHorizon: `${prefix}archive:horizon`,
    archiveLease: `${prefix}archive:lease`,
    archiveAdopted: `${prefix}archive:adopted`,
    archiveRestore: `${prefix}archive:restore`,
    archiveReplays: `${prefix}archive:replays`,
    archiveReplayProgress: `${prefix}archive:replay-progress`,
    archiveStatusRequests: `${prefix}archive:status-requests`,
    archiveMissing: (namespace, id) => `${prefix}archive:missing:${namespace}:${id}`,
    legacyLog: {
      all: `${prefix}log`,
      namespace: (namespace) => `${prefix}log:ns:${namespace}`,
      webhook: (namespace, webhook) => `${prefix}log:ns:${namespace}:webhook:${webhook}`,
      indexes: `${prefix}log:indexes`,
    },
  };
}
