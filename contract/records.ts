import { z } from "zod";
import { type EventType, EventTypeSchema } from "./event-types.ts";
import { notificationPayload } from "./notification.ts";

// The shapes of every record the dispatcher keeps in Redis: the `…RecordSchema`s are the decoded
// form callers use (and the event log API shows), the `Stored…Schema`s the form kept in Redis.

export const DELIVERY_PHASES = ["QUEUED", "SENT", "FAILED"] as const;
export const DeliveryPhaseSchema = z.enum(DELIVERY_PHASES);
export type DeliveryPhase = z.infer<typeof DeliveryPhaseSchema>;

/** Why a delivery ended FAILED. Bounded: also a metric label. */
export const FAILURE_REASONS = [
  /** every attempt of the budget failed */
  "attempts-exhausted",
  /** the receiver answered 410 Gone: the endpoint no longer exists */
  "endpoint-gone",
  /** the receiver answered with `webhook-delivery: abort-message` */
  "aborted-by-receiver",
  /** the URL is not allowed (plain http, or resolves to a refused address range) */
  "destination-refused",
  /** the namespace's integration was disabled or removed before the attempt */
  "integration-disabled",
  /** the webhook was deleted before the attempt */
  "webhook-removed",
  /** the webhook was paused before the attempt */
  "webhook-paused",
] as const;
export const FailureReasonSchema = z.enum(FAILURE_REASONS);
export type FailureReason = z.infer<typeof FailureReasonSchema>;

/** Stable codes of a failed attempt. Bounded: also a metric label (with `success`). */
export const ATTEMPT_ERROR_CODES = [
  "http_status",
  "redirect",
  "timeout",
  "connection_refused",
  "connection_reset",
  "dns_failure",
  "destination_refused",
  "tls_error",
  "network_error",
] as const;
export const AttemptErrorCodeSchema = z.enum(ATTEMPT_ERROR_CODES);
export type AttemptErrorCode = z.infer<typeof AttemptErrorCodeSchema>;

export const AttemptSchema = z.object({
  /** 1-based, counted across retry cycles. */
  number: z.int().positive(),
  startedAt: z.iso.datetime(),
  durationMs: z.number().nonnegative(),
  statusCode: z.int().optional(),
  errorCode: AttemptErrorCodeSchema.optional(),
  /** Human-readable; never contains secrets or signatures. */
  error: z.string().optional(),
  /** The first bytes (≤ 1 KiB) of the response body. */
  responseBodyPrefix: z.string().optional(),
});
export type Attempt = z.infer<typeof AttemptSchema>;

/**
 * A delivery: one event to one webhook. `id` is also the `webhook-id` header and the name of the
 * operator's WebhookEvent object (see delivery-id.ts).
 */
export const DeliveryRecordSchema = z.object({
  id: z.string(),
  eventId: z.string(),
  eventType: EventTypeSchema,
  namespace: z.string(),
  webhook: z.string(),
  webhookUid: z.string(),
  /** The URL of the latest attempt (the webhook's URL when the delivery was created, until then). */
  url: z.string(),
  /** The exact JSON body sent (the same bytes on every attempt). */
  payload: z.string(),
  phase: DeliveryPhaseSchema,
  attempts: z.array(AttemptSchema),
  /** The attempt budget of one cycle (the integration's `delivery.maxAttempts`). */
  maxAttempts: z.int().positive(),
  /** 1 for the first cycle, +1 for every honoured retry request. */
  cycle: z.int().positive(),
  /** Attempts made in the current cycle (≤ maxAttempts). */
  cycleAttempts: z.int().nonnegative(),
  occurredAt: z.iso.datetime({ offset: true }),
  ingestedAt: z.iso.datetime(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  nextAttemptAt: z.iso.datetime().optional(),
  failureReason: FailureReasonSchema.optional(),
  lastRetryToken: z.string().optional(),
  /** Why the operator could not show this delivery as a WebhookEvent (the API server refused it). */
  mirrorError: z.string().optional(),
  /** Its webhook was `ordering: Ordered` when it was made: it waits its turn in the webhook's queue. */
  ordered: z.boolean().optional(),
  /** Bumped by every state change; guards against two workers recording the same attempt. */
  version: z.int().nonnegative(),
});
export type DeliveryRecord = z.infer<typeof DeliveryRecordSchema>;

// ── Stored forms ─────────────────────────────────────────────────────────────────────────────
//
// Records are packed strings (format `d2` / `e2`), not hashes: a hash of 20 fields costs Redis
// a dictionary entry per field as soon as one value outgrows `hash-max-listpack-value` (64 B by
// default; the payload and the attempts always did), about 1.9 KB per delivery; one string
// costs its bytes. A packed record is one line of tab-separated fields, in the order of its
// schema's keys below (the Lua scripts address fields by that position, see fragments.ts),
// then — for a delivery — one line per attempt, or — for an event — its `data`.
//
// What every delivery of an event shares lives once, in the event record: `occurredAt`,
// `ingestedAt` and `data`, from which each delivery's payload is built again when it is read
// (notification.ts). The idempotency marker of an event id lives there too (`seenUntil`,
// `seenBy`) instead of a key of its own.
//
// Records written before (format 1: the hash `DeliveryHashSchema`, the event as JSON, the marker
// `seen:<ns>:<id>`) are still read as they are, and a script that changes a hash delivery
// rewrites it in the packed form, its payload kept inline (`payload`).

/**
 * How free text is kept inside a packed line: `%`, tab (field separator), newline (line
 * separator) and `,` (list separator) are written `%25`, `%09`, `%0A`, `%2C`. Identifiers
 * (namespace, event id, webhook name, delivery id) have none of these characters, so they are
 * stored as they are and the scripts build keys from them directly.
 */
export const FIELD_ESCAPES: Readonly<Record<string, string>> = {
  "%": "%25",
  "\t": "%09",
  "\n": "%0A",
  ",": "%2C",
};
const UNESCAPES: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(FIELD_ESCAPES).map(([char, escaped]) => [escaped, char]),
);

export function escapeField(value: string): string {
  return value.replace(/[%\t\n,]/g, (char) => FIELD_ESCAPES[char]!);
}

export function unescapeField(value: string): string {
  return value.replace(/%(?:25|09|0A|2C)/g, (escaped) => UNESCAPES[escaped]!);
}

const PACKED_FIELD = /^[^\t\n]*$/;
const ESCAPED_FIELD = /^[^\t\n,]*$/;
const text = z.codec(z.string().regex(ESCAPED_FIELD), z.string(), {
  decode: unescapeField,
  encode: escapeField,
});
const optionalText = z
  .codec(z.string().regex(ESCAPED_FIELD), z.string().optional(), {
    decode: (value) => (value === "" ? undefined : unescapeField(value)),
    encode: (value) => (value === undefined ? "" : escapeField(value)),
  })
  .optional();
const count = z.codec(z.string().regex(/^\d+$/), z.int().nonnegative(), {
  decode: Number,
  encode: String,
});
const optionalCount = z
  .codec(z.string().regex(/^\d*$/), z.int().nonnegative().optional(), {
    decode: (value) => (value === "" ? undefined : Number(value)),
    encode: (value) => (value === undefined ? "" : String(value)),
  })
  .optional();
const textList = z.codec(z.string().regex(PACKED_FIELD), z.array(z.string()), {
  decode: (value) => (value === "" ? [] : value.split(",").map(unescapeField)),
  encode: (values) => values.map(escapeField).join(","),
});
const optionalFailureReason = z
  .codec(z.string(), FailureReasonSchema.optional(), {
    decode: (value) => (value === "" ? undefined : (value as FailureReason)),
    encode: (value) => value ?? "",
  })
  .optional();
/** A flag: "1" set, "" (or left out at the end of the line) unset. */
const optionalFlag = z
  .codec(z.enum(["", "1"]), z.boolean().optional(), {
    decode: (value) => (value === "1" ? true : undefined),
    encode: (value) => (value ? "1" : ""),
  })
  .optional();

/** The most attempts a delivery record keeps: the latest ones (as many as a WebhookEvent shows). */
export const MAX_KEPT_ATTEMPTS = 50;

/**
 * An attempt as stored: one line, the JSON array `[number, startedAt (epoch ms), durationMs,
 * statusCode, responseBodyPrefix, errorCode, error]`, absent values null and trailing ones left
 * out: `[1,1735689600000,12.5,200,"ok"]`, `[2,1735689630000,3.1,null,null,"timeout","no response
 * within 15000 ms"]`. A line that is a JSON object is an attempt as format 1 kept it (a hash
 * delivery rewritten by a script).
 */
const AttemptTupleSchema = z.tuple([
  z.int().positive(),
  z.int().nonnegative(),
  z.number().nonnegative(),
  z.int().nullable().optional(),
  z.string().nullable().optional(),
  AttemptErrorCodeSchema.nullable().optional(),
  z.string().nullable().optional(),
]);
export const StoredAttemptSchema = z.codec(z.string().regex(PACKED_FIELD), AttemptSchema, {
  decode: (line) => {
    const json: unknown = JSON.parse(line);
    if (!Array.isArray(json)) return AttemptSchema.parse(json);
    const [number, startedAt, durationMs, statusCode, responseBodyPrefix, errorCode, error] =
      AttemptTupleSchema.parse(json);
    const attempt: Attempt = { number, startedAt: new Date(startedAt).toISOString(), durationMs };
    if (statusCode != null) attempt.statusCode = statusCode;
    if (errorCode != null) attempt.errorCode = errorCode;
    if (error != null) attempt.error = error;
    if (responseBodyPrefix != null) attempt.responseBodyPrefix = responseBodyPrefix;
    return attempt;
  },
  encode: (attempt) => {
    const tuple: unknown[] = [
      attempt.number,
      Date.parse(attempt.startedAt),
      attempt.durationMs,
      attempt.statusCode ?? null,
      attempt.responseBodyPrefix ?? null,
      attempt.errorCode ?? null,
      attempt.error ?? null,
    ];
    while (tuple.at(-1) === null) tuple.pop();
    return JSON.stringify(tuple);
  },
});

export const DELIVERY_FORMAT = "d2";

/**
 * The first line of a delivery record (string `delivery:<id>`, format `d2`): the fields in this
 * order, tab-separated, empty ones at the end left out. Then one line per attempt kept
 * (StoredAttemptSchema), oldest first, at most MAX_KEPT_ATTEMPTS. `ingestedAt`, `data` and
 * `payload` are empty while the delivery refers to its event record for them and `occurredAt`
 * (the payload is then built from the event's data); `data` is set when the event record was
 * replaced by a later event with the same id (after the idempotency window), `payload` for a
 * record rewritten from format 1. An empty `occurredAt` beside them is the ingest time.
 */
export const StoredDeliverySchema = z.object({
  format: z.literal(DELIVERY_FORMAT),
  phase: DeliveryPhaseSchema,
  version: count,
  /** attempts made, every cycle (the record keeps the latest MAX_KEPT_ATTEMPTS) */
  attemptCount: count,
  maxAttempts: count,
  cycle: count,
  cycleAttempts: count,
  /** epoch ms */
  createdAt: count,
  /** epoch ms */
  updatedAt: count,
  eventId: text,
  namespace: text,
  webhook: text,
  webhookUid: text,
  eventType: EventTypeSchema,
  url: text,
  /** the routing revision the delivery was fanned out at */
  routingRevision: optionalCount,
  /** epoch ms */
  nextAttemptAt: optionalCount,
  failureReason: optionalFailureReason,
  /** honoured retry tokens, the latest last (REMEMBERED_RETRY_TOKENS of them) */
  retryTokens: textList,
  mirrorError: optionalText,
  occurredAt: optionalText,
  /** epoch ms */
  ingestedAt: optionalCount,
  data: optionalText,
  payload: optionalText,
  /**
   * The delivery waits in its webhook's ordered queue (Keyspace.orderedQueue; the webhook was
   * `ordering: Ordered` when it was made): settling it hands the turn to the next one. Last, so
   * that records of unordered webhooks keep their length (empty fields at the end are left out).
   */
  ordered: optionalFlag,
});
export type StoredDelivery = z.output<typeof StoredDeliverySchema>;
/** The fields of a delivery record's first line, in their order. */
export const STORED_DELIVERY_FIELDS = Object.keys(StoredDeliverySchema.shape) as ReadonlyArray<
  keyof StoredDelivery
>;

/** A delivery as stored (either format), decoded; what it takes from its event not yet resolved. */
export interface StoredDeliveryView {
  header: StoredDelivery;
  attempts: Attempt[];
}

export function packDelivery(header: StoredDelivery, attempts: readonly Attempt[] = []): string {
  return (
    packLine(StoredDeliverySchema, STORED_DELIVERY_FIELDS, header) +
    attempts.map((attempt) => `\n${StoredAttemptSchema.encode(attempt)}`).join("")
  );
}

/**
 * The packed line of a delivery just fanned out (QUEUED, version 0, no attempt), as packDelivery
 * writes it but without the schema's checks: the fan-out's hot path (tested equal).
 */
export function packQueuedDelivery(delivery: {
  eventId: string;
  namespace: string;
  webhook: string;
  webhookUid: string;
  eventType: EventType;
  url: string;
  maxAttempts: number;
  /** epoch ms */
  createdAt: number;
  routingRevision: number | undefined;
  /** the webhook is ordered: the delivery waits in its ordered queue */
  ordered?: boolean | undefined;
}): string {
  const fields: Partial<Record<keyof StoredDelivery, string>> = {
    format: DELIVERY_FORMAT,
    phase: "QUEUED",
    version: "0",
    attemptCount: "0",
    maxAttempts: String(delivery.maxAttempts),
    cycle: "1",
    cycleAttempts: "0",
    createdAt: String(delivery.createdAt),
    updatedAt: String(delivery.createdAt),
    eventId: escapeField(delivery.eventId),
    namespace: escapeField(delivery.namespace),
    webhook: escapeField(delivery.webhook),
    webhookUid: escapeField(delivery.webhookUid),
    eventType: delivery.eventType,
    url: escapeField(delivery.url),
    routingRevision: delivery.routingRevision === undefined ? "" : String(delivery.routingRevision),
    ordered: delivery.ordered ? "1" : "",
  };
  return packFields(STORED_DELIVERY_FIELDS.map((field) => fields[field] ?? ""));
}

export function unpackDelivery(value: string): StoredDeliveryView {
  const lines = value.split("\n");
  return {
    header: unpackLine(StoredDeliverySchema, STORED_DELIVERY_FIELDS, lines[0]!),
    attempts: lines.slice(1).map((line) => StoredAttemptSchema.decode(line)),
  };
}

/** When the business event happened: an empty `occurredAt` is the ingest time (the default). */
function occurredAtOf(record: { occurredAt?: string | undefined; ingestedAt?: number | undefined }): string {
  return record.occurredAt ?? new Date(record.ingestedAt ?? 0).toISOString();
}

/** One packed line from a record's fields (the schema encodes each value). */
function packLine<Schema extends z.ZodObject>(
  schema: Schema,
  fields: ReadonlyArray<string>,
  value: z.output<Schema>,
): string {
  const encoded = schema.encode(value) as Record<string, string | undefined>;
  return packFields(fields.map((field) => encoded[field] ?? ""));
}

/** Values joined by tabs, empty ones at the end left out (unpackLine reads them as empty). */
function packFields(values: string[]): string {
  let end = values.length;
  while (end > 1 && values[end - 1] === "") end--;
  return values.slice(0, end).join("\t");
}

function unpackLine<Schema extends z.ZodObject>(
  schema: Schema,
  fields: ReadonlyArray<string>,
  line: string,
): z.output<Schema> {
  const values = line.split("\t");
  if (values.length > fields.length)
    throw new Error(`a packed record line has ${values.length} fields, more than ${fields.length}`);
  return schema.decode(
    Object.fromEntries(fields.map((field, i) => [field, values[i] ?? ""])) as z.input<Schema>,
  );
}

/**
 * What a delivery takes from its event: its own copy (a record rewritten from format 1, or whose
 * event record was replaced), else the event record's. Null when it refers to an event record
 * that is gone (Redis lost or evicted it): the payload is gone with it.
 */
export function resolveEventPart(
  { header }: StoredDeliveryView,
  event: StoredEventView | null,
): { occurredAt: string; ingestedAt: number; payload: string } | null {
  const { ingestedAt, data, payload } = header;
  if (ingestedAt !== undefined && payload !== undefined)
    return { occurredAt: occurredAtOf(header), ingestedAt, payload };
  const source =
    ingestedAt !== undefined && data !== undefined
      ? { occurredAt: occurredAtOf(header), ingestedAt, data }
      : event && {
          occurredAt: occurredAtOf(event.header),
          ingestedAt: event.header.ingestedAt,
          data: event.data,
        };
  if (!source) return null; // the event record is gone: the payload with it
  return {
    occurredAt: source.occurredAt,
    ingestedAt: source.ingestedAt,
    payload: notificationPayload({
      eventId: header.eventId,
      type: header.eventType,
      occurredAt: source.occurredAt,
      namespace: header.namespace,
      webhook: header.webhook,
      dataJson: source.data,
    }),
  };
}

// ── Format 1 (read until retention has expired the last of them) ─────────────────────────────

const epochMs = z.string().regex(/^\d+$/).transform(Number);
const optionalEpochMs = z
  .string()
  .optional()
  .transform((value) => (value ? Number(value) : undefined));
const optionalString = z
  .string()
  .optional()
  .transform((value) => (value ? value : undefined));

/** A delivery as format 1 stored it: the hash `delivery:<id>`, one field per value. */
export const DeliveryHashSchema = z.object({
  id: z.string(),
  eventId: z.string(),
  eventType: EventTypeSchema,
  namespace: z.string(),
  webhook: z.string(),
  webhookUid: z.string().default(""),
  url: z.string(),
  payload: z.string(),
  phase: DeliveryPhaseSchema,
  attempts: z.string().transform((json) => z.array(AttemptSchema).parse(JSON.parse(json))),
  attemptCount: optionalEpochMs,
  maxAttempts: epochMs,
  cycle: epochMs,
  cycleAttempts: epochMs,
  occurredAt: z.string(),
  ingestedAt: epochMs,
  createdAt: epochMs,
  updatedAt: epochMs,
  nextAttemptAt: optionalEpochMs,
  failureReason: optionalString.pipe(FailureReasonSchema.optional()),
  lastRetryToken: optionalString,
  retryTokens: optionalString.transform((json) =>
    json === undefined ? undefined : z.array(z.string()).parse(JSON.parse(json)),
  ),
  mirrorError: optionalString,
  routingRevision: optionalEpochMs,
  version: epochMs,
});

/** A format 1 hash as the packed form holds it (the scripts rewrite it so when they change it). */
export function legacyDeliveryView(hash: Record<string, string>): StoredDeliveryView {
  const h = DeliveryHashSchema.parse(hash);
  return {
    header: {
      format: DELIVERY_FORMAT,
      phase: h.phase,
      version: h.version,
      attemptCount: h.attemptCount ?? h.attempts.length,
      maxAttempts: h.maxAttempts,
      cycle: h.cycle,
      cycleAttempts: h.cycleAttempts,
      createdAt: h.createdAt,
      updatedAt: h.updatedAt,
      nextAttemptAt: h.nextAttemptAt,
      failureReason: h.failureReason,
      eventId: h.eventId,
      namespace: h.namespace,
      webhook: h.webhook,
      webhookUid: h.webhookUid,
      eventType: h.eventType,
      url: h.url,
      routingRevision: h.routingRevision,
      retryTokens: h.retryTokens ?? (h.lastRetryToken ? [h.lastRetryToken] : []),
      mirrorError: h.mirrorError,
      occurredAt: h.occurredAt,
      ingestedAt: h.ingestedAt,
      data: undefined,
      payload: h.payload,
    },
    attempts: h.attempts.slice(-MAX_KEPT_ATTEMPTS),
  };
}

/** The full record of a delivery, or null when what it refers to of its event is gone. */
export function toDeliveryRecord(
  id: string,
  view: StoredDeliveryView,
  event: StoredEventView | null,
): DeliveryRecord | null {
  const fromEvent = resolveEventPart(view, event);
  if (!fromEvent) return null;
  const { header } = view;
  const iso = (ms: number) => new Date(ms).toISOString();
  return DeliveryRecordSchema.parse({
    id,
    eventId: header.eventId,
    eventType: header.eventType,
    namespace: header.namespace,
    webhook: header.webhook,
    webhookUid: header.webhookUid,
    url: header.url,
    payload: fromEvent.payload,
    phase: header.phase,
    attempts: view.attempts,
    maxAttempts: header.maxAttempts,
    cycle: header.cycle,
    cycleAttempts: header.cycleAttempts,
    occurredAt: fromEvent.occurredAt,
    ingestedAt: iso(fromEvent.ingestedAt),
    createdAt: iso(header.createdAt),
    updatedAt: iso(header.updatedAt),
    nextAttemptAt: header.nextAttemptAt === undefined ? undefined : iso(header.nextAttemptAt),
    failureReason: header.failureReason,
    lastRetryToken: header.retryTokens.at(-1),
    mirrorError: header.mirrorError,
    ordered: header.ordered,
    version: header.version,
  });
}

/** What the event log keeps about an ingested event, whether or not anyone subscribed to it. */
export const EVENT_ROUTINGS = [
  "routed",
  "no-subscribers",
  /** every subscriber's filter left it out */
  "filtered",
  "integration-disabled",
  "integration-missing",
] as const;
export const EventRoutingSchema = z.enum(EVENT_ROUTINGS);
export type EventRouting = z.infer<typeof EventRoutingSchema>;

export const EventRecordSchema = z.object({
  id: z.string(),
  type: EventTypeSchema,
  namespace: z.string(),
  occurredAt: z.string(),
  ingestedAt: z.iso.datetime(),
  data: z.string(),
  routing: EventRoutingSchema,
  deliveryIds: z.array(z.string()),
});
export type EventRecord = z.infer<typeof EventRecordSchema>;

export const EVENT_FORMAT = "e2";

/**
 * The first line of an event record (string `event:<namespace>:<id>`, format `e2`): the fields
 * in this order, tab-separated; then the event's `data` as it came in (the rest of the value).
 * The event id and namespace are the key's. `seenUntil` / `seenBy` are the event id's
 * idempotency marker: until `seenUntil` (epoch ms), an event with the same id is a duplicate,
 * unless it is the ingest stream entry `seenBy` itself ("api" for the HTTP API) fanned out again.
 * An event record lives at least as long as every delivery that refers to it.
 */
export const StoredEventSchema = z.object({
  format: z.literal(EVENT_FORMAT),
  /** epoch ms */
  seenUntil: count,
  seenBy: text,
  type: EventTypeSchema,
  /** empty when it is the ingest time (the producer gave none) */
  occurredAt: optionalText,
  /** epoch ms */
  ingestedAt: count,
  routing: EventRoutingSchema,
  deliveryIds: textList,
});
export type StoredEvent = z.output<typeof StoredEventSchema>;
/** The fields of an event record's first line, in their order. */
export const STORED_EVENT_FIELDS = Object.keys(StoredEventSchema.shape) as ReadonlyArray<keyof StoredEvent>;

export interface StoredEventView {
  header: StoredEvent;
  /** the producer's `data`, a JSON object as it came in */
  data: string;
}

export function packEvent(header: StoredEvent, data: string): string {
  return `${packLine(StoredEventSchema, STORED_EVENT_FIELDS, header)}\n${data}`;
}

/** packEvent without the schema's checks: the fan-out's hot path (tested equal). */
export function packNewEvent(header: StoredEvent, data: string): string {
  const fields: Record<keyof StoredEvent, string> = {
    format: header.format,
    seenUntil: String(header.seenUntil),
    seenBy: escapeField(header.seenBy),
    type: header.type,
    occurredAt: header.occurredAt === undefined ? "" : escapeField(header.occurredAt),
    ingestedAt: String(header.ingestedAt),
    routing: header.routing,
    deliveryIds: header.deliveryIds.map(escapeField).join(","),
  };
  return `${packFields(STORED_EVENT_FIELDS.map((field) => fields[field]))}\n${data}`;
}

/** An event record of either format (format 1: EventRecord as JSON, without a marker). */
export function unpackEvent(value: string): StoredEventView {
  if (value.startsWith("{")) {
    const legacy = EventRecordSchema.parse(JSON.parse(value));
    return {
      header: {
        format: EVENT_FORMAT,
        seenUntil: 0,
        seenBy: "",
        type: legacy.type,
        occurredAt: legacy.occurredAt,
        ingestedAt: Date.parse(legacy.ingestedAt),
        routing: legacy.routing,
        deliveryIds: legacy.deliveryIds,
      },
      data: legacy.data,
    };
  }
  const newline = value.indexOf("\n");
  if (newline < 0) throw new Error("an event record without data");
  return {
    header: unpackLine(StoredEventSchema, STORED_EVENT_FIELDS, value.slice(0, newline)),
    data: value.slice(newline + 1),
  };
}

/** The event log's view of a stored event (`GET /v1/events/:namespace/:id`). */
export function decodeEvent(namespace: string, id: string, value: string): EventRecord {
  const { header, data } = unpackEvent(value);
  return EventRecordSchema.parse({
    id,
    type: header.type,
    namespace,
    occurredAt: occurredAtOf(header),
    ingestedAt: new Date(header.ingestedAt).toISOString(),
    data,
    routing: header.routing,
    deliveryIds: header.deliveryIds,
  });
}

/** One entry of the status stream (see Keyspace.status). */
export const StatusEntrySchema = z.object({
  deliveryId: z.string(),
  phase: DeliveryPhaseSchema,
  namespace: z.string(),
  webhook: z.string(),
  eventId: z.string(),
  attempts: z.coerce.number().int().nonnegative(),
  /** ISO time of the change: the entry id's, or the `at` field (an entry of format 1, or one for a record brought back from the durable log store) */
  at: z.iso.datetime(),
  failureReason: FailureReasonSchema.optional(),
  /** only in entries of format 1 */
  eventType: EventTypeSchema.optional(),
});
export type StatusEntry = z.infer<typeof StatusEntrySchema>;

/** Turns the flat `[field, value, field, value…]` of a stream entry into an object. */
export function fieldsToObject(fields: readonly string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) result[fields[i]!] = fields[i + 1]!;
  return result;
}
