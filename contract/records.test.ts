import { describe, expect, it } from "vitest";
import { notificationPayload } from "./notification.ts";
import {
  type Attempt,
  DeliveryRecordSchema,
  decodeEvent,
  EVENT_FORMAT,
  escapeField,
  legacyDeliveryView,
  MAX_KEPT_ATTEMPTS,
  packDelivery,
  packEvent,
  packNewEvent,
  packQueuedDelivery,
  STORED_DELIVERY_FIELDS,
  StoredAttemptSchema,
  type StoredDelivery,
  type StoredEvent,
  toDeliveryRecord,
  unescapeField,
  unpackDelivery,
  unpackEvent,
} from "./records.ts";

// The packed record formats (d2, e2) on their own: what is written is read back unchanged, free
// text cannot break a line, and the records of format 1 read as they did.

const CREATED = Date.parse("2026-01-01T10:00:00.000Z");

function header(overrides: Partial<StoredDelivery> = {}): StoredDelivery {
  return {
    format: "d2",
    phase: "QUEUED",
    version: 0,
    attemptCount: 0,
    maxAttempts: 3,
    cycle: 1,
    cycleAttempts: 0,
    createdAt: CREATED,
    updatedAt: CREATED,
    eventId: "evt-1",
    namespace: "team-a",
    webhook: "orders",
    webhookUid: "6f1c0e55-1111-4222-8333-944445555666",
    eventType: "job.created",
    url: "https://receiver.example/hook",
    routingRevision: 7,
    nextAttemptAt: undefined,
    failureReason: undefined,
    retryTokens: [],
    mirrorError: undefined,
    occurredAt: undefined,
    ingestedAt: undefined,
    data: undefined,
    payload: undefined,
    ...overrides,
  };
}

function event(overrides: Partial<StoredEvent> = {}): StoredEvent {
  return {
    format: EVENT_FORMAT,
    seenUntil: CREATED + 86_400_000,
    seenBy: "api",
    type: "job.created",
    occurredAt: "2026-01-01T09:59:00+01:00",
    ingestedAt: CREATED - 5,
    routing: "routed",
    deliveryIds: ["orders-aaaaaaaaaaaaaaaaaaaa"],
    ...overrides,
  };
}

const ODD = 'a%b\tc\nd,e %25 %0A "quoted" ünïcödé 🦆';

describe("escapeField", () => {
  it("keeps separators out of a field and gives the text back exactly", () => {
    const escaped = escapeField(ODD);
    expect(escaped).not.toMatch(/[\t\n,]/);
    expect(unescapeField(escaped)).toBe(ODD);
    expect(escapeField("plain-id_1.x:y")).toBe("plain-id_1.x:y"); // identifiers are stored as they are
  });
});

describe("delivery records (d2)", () => {
  it("read back every field and attempt as written", () => {
    const full = header({
      phase: "FAILED",
      version: 9,
      attemptCount: 4,
      cycle: 2,
      cycleAttempts: 1,
      updatedAt: CREATED + 60_000,
      nextAttemptAt: CREATED + 120_000,
      failureReason: "endpoint-gone",
      url: "https://receiver.example/a,b?x=%41&y=\t",
      retryTokens: ["t1", ODD, "t,3"],
      mirrorError: ODD,
      occurredAt: "2026-01-01T09:59:00+01:00",
      ingestedAt: CREATED - 5,
      data: '{"a":"line\\nbreak","b":[1,2]}',
      payload: '{"raw":\n"with a newline\tand a tab"}',
    });
    const attempts: Attempt[] = [
      {
        number: 3,
        startedAt: "2026-01-01T10:00:01.000Z",
        durationMs: 12.34,
        statusCode: 500,
        responseBodyPrefix: ODD,
        errorCode: "http_status",
        error: "HTTP 500",
      },
      {
        number: 4,
        startedAt: "2026-01-01T10:00:31.250Z",
        durationMs: 15_000,
        errorCode: "timeout",
        error: "no response within 15000 ms",
      },
    ];
    const value = packDelivery(full, attempts);
    expect(value.split("\n")).toHaveLength(3); // one line of fields, one per attempt
    expect(unpackDelivery(value)).toEqual({ header: full, attempts });
  });

  it("leave empty fields at the end of the line out", () => {
    const value = packDelivery(header());
    expect(value).toBe(
      "d2\tQUEUED\t0\t0\t3\t1\t0\t1767261600000\t1767261600000\tevt-1\tteam-a\torders\t6f1c0e55-1111-4222-8333-944445555666\tjob.created\thttps://receiver.example/hook\t7",
    );
    expect(unpackDelivery(value).header).toEqual(header());
  });

  it("keep phase in the second field (the promote script reads it from the first bytes)", () => {
    expect(STORED_DELIVERY_FIELDS.slice(0, 2)).toEqual(["format", "phase"]);
  });

  it("are made by the fan-out's fast path exactly as by the schema", () => {
    const odd = header({
      url: "https://receiver.example/a,b%2C\t",
      webhookUid: "",
      routingRevision: undefined,
    });
    expect(
      packQueuedDelivery({
        eventId: odd.eventId,
        namespace: odd.namespace,
        webhook: odd.webhook,
        webhookUid: odd.webhookUid,
        eventType: odd.eventType,
        url: odd.url,
        maxAttempts: odd.maxAttempts,
        createdAt: CREATED,
        routingRevision: undefined,
      }),
    ).toBe(packDelivery(odd));
    const ordered = header({ ordered: true });
    expect(
      packQueuedDelivery({
        eventId: ordered.eventId,
        namespace: ordered.namespace,
        webhook: ordered.webhook,
        webhookUid: ordered.webhookUid,
        eventType: ordered.eventType,
        url: ordered.url,
        maxAttempts: ordered.maxAttempts,
        createdAt: CREATED,
        routingRevision: 7,
        ordered: true,
      }),
    ).toBe(packDelivery(ordered));
    expect(unpackDelivery(packDelivery(ordered)).header.ordered).toBe(true);
  });

  it("keep attempts compact: a JSON array, absent values null, trailing ones left out", () => {
    const sent: Attempt = {
      number: 1,
      startedAt: "2026-01-01T10:00:00.123Z",
      durationMs: 3.5,
      statusCode: 200,
      responseBodyPrefix: "ok",
    };
    expect(StoredAttemptSchema.encode(sent)).toBe('[1,1767261600123,3.5,200,"ok"]');
    const refused: Attempt = {
      number: 2,
      startedAt: "2026-01-01T10:00:00.000Z",
      durationMs: 0,
      errorCode: "connection_refused",
      error: "refused",
    };
    expect(StoredAttemptSchema.encode(refused)).toBe(
      '[2,1767261600000,0,null,null,"connection_refused","refused"]',
    );
    for (const attempt of [sent, refused]) {
      expect(StoredAttemptSchema.decode(StoredAttemptSchema.encode(attempt))).toEqual(attempt);
    }
    // an attempt as format 1 kept it (a JSON object), in a record rewritten by a script
    expect(StoredAttemptSchema.decode(JSON.stringify(refused))).toEqual(refused);
  });

  it("show the payload built from their event record, byte for byte what was sent", () => {
    const data = '{"jobId":"j-1","note":"tab\\there"}';
    const stored = event({ occurredAt: undefined });
    const record = toDeliveryRecord("orders-aaaaaaaaaaaaaaaaaaaa", unpackDelivery(packDelivery(header())), {
      header: stored,
      data,
    });
    const occurredAt = new Date(stored.ingestedAt).toISOString(); // none given: the ingest time
    expect(record).toMatchObject({
      id: "orders-aaaaaaaaaaaaaaaaaaaa",
      occurredAt,
      ingestedAt: occurredAt,
      createdAt: "2026-01-01T10:00:00.000Z",
      payload: notificationPayload({
        eventId: "evt-1",
        type: "job.created",
        occurredAt,
        namespace: "team-a",
        webhook: "orders",
        dataJson: data,
      }),
    });
    expect(DeliveryRecordSchema.parse(record)).toEqual(record);
  });

  it("show their own copy when they have one, and nothing when their event record is gone", () => {
    const view = unpackDelivery(packDelivery(header()));
    expect(toDeliveryRecord("d", view, null)).toBeNull();
    const detached = header({ ingestedAt: CREATED - 5, occurredAt: "2025-12-31T00:00:00Z", data: "{}" });
    expect(toDeliveryRecord("d", unpackDelivery(packDelivery(detached)), null)?.payload).toBe(
      '{"id":"evt-1","type":"job.created","timestamp":"2025-12-31T00:00:00Z","namespace":"team-a","webhook":"orders","data":{}}',
    );
    const rewritten = header({
      ingestedAt: CREATED - 5,
      occurredAt: "2025-12-31T00:00:00Z",
      payload: "exact bytes",
    });
    expect(toDeliveryRecord("d", unpackDelivery(packDelivery(rewritten)), null)?.payload).toBe("exact bytes");
  });
});

describe("event records (e2)", () => {
  it("read back as written, data as it came in", () => {
    const data = '{\n  "pretty": "printed, with a tab\t"\n}';
    for (const stored of [
      event(),
      event({ occurredAt: undefined, deliveryIds: [], routing: "no-subscribers" }),
    ]) {
      const value = packEvent(stored, data);
      expect(packNewEvent(stored, data)).toBe(value);
      expect(unpackEvent(value)).toEqual({ header: stored, data });
    }
  });

  it("show the event log's view, the id and namespace from the key", () => {
    expect(decodeEvent("team-a", "evt-1", packEvent(event(), "{}"))).toEqual({
      id: "evt-1",
      type: "job.created",
      namespace: "team-a",
      occurredAt: "2026-01-01T09:59:00+01:00",
      ingestedAt: "2026-01-01T09:59:59.995Z",
      data: "{}",
      routing: "routed",
      deliveryIds: ["orders-aaaaaaaaaaaaaaaaaaaa"],
    });
  });
});

describe("records of format 1", () => {
  // a hash and an event as the previous version wrote them (field for field)
  const hash = {
    id: "orders-aaaaaaaaaaaaaaaaaaaa",
    eventId: "evt-1",
    eventType: "job.created",
    namespace: "team-a",
    webhook: "orders",
    webhookUid: "uid-1",
    url: "https://receiver.example/hook",
    payload: '{"id":"evt-1"}',
    phase: "FAILED",
    attempts: JSON.stringify([
      {
        number: 1,
        startedAt: "2026-01-01T10:00:01.000Z",
        durationMs: 5,
        statusCode: 500,
        errorCode: "http_status",
        error: "HTTP 500",
      },
    ]),
    attemptCount: "1",
    maxAttempts: "1",
    cycle: "2",
    cycleAttempts: "1",
    occurredAt: "2026-01-01T09:00:00Z",
    ingestedAt: String(CREATED - 5),
    createdAt: String(CREATED),
    updatedAt: String(CREATED + 1_000),
    version: "4",
    routingRevision: "3",
    failureReason: "attempts-exhausted",
    lastRetryToken: "t-2",
    retryTokens: '["t-1","t-2"]',
  };

  it("read as they were: payload and attempts their own", () => {
    expect(toDeliveryRecord(hash.id, legacyDeliveryView(hash), null)).toEqual({
      id: hash.id,
      eventId: "evt-1",
      eventType: "job.created",
      namespace: "team-a",
      webhook: "orders",
      webhookUid: "uid-1",
      url: "https://receiver.example/hook",
      payload: '{"id":"evt-1"}',
      phase: "FAILED",
      attempts: [
        {
          number: 1,
          startedAt: "2026-01-01T10:00:01.000Z",
          durationMs: 5,
          statusCode: 500,
          errorCode: "http_status",
          error: "HTTP 500",
        },
      ],
      maxAttempts: 1,
      cycle: 2,
      cycleAttempts: 1,
      occurredAt: "2026-01-01T09:00:00Z",
      ingestedAt: "2026-01-01T09:59:59.995Z",
      createdAt: "2026-01-01T10:00:00.000Z",
      updatedAt: "2026-01-01T10:00:01.000Z",
      failureReason: "attempts-exhausted",
      lastRetryToken: "t-2",
      version: 4,
    });
    expect(legacyDeliveryView(hash).header).toMatchObject({
      retryTokens: ["t-1", "t-2"],
      routingRevision: 3,
    });
  });

  it("keep the latest MAX_KEPT_ATTEMPTS attempts, as the packed form does", () => {
    const many = Array.from({ length: MAX_KEPT_ATTEMPTS + 5 }, (_, i) => ({
      number: i + 1,
      startedAt: "2026-01-01T10:00:01.000Z",
      durationMs: 1,
    }));
    const view = legacyDeliveryView({
      ...hash,
      attempts: JSON.stringify(many),
      attemptCount: String(many.length),
    });
    expect(view.attempts.map((a) => a.number)).toEqual(many.slice(-MAX_KEPT_ATTEMPTS).map((a) => a.number));
    expect(view.header.attemptCount).toBe(MAX_KEPT_ATTEMPTS + 5);
  });

  it("read an event kept as JSON", () => {
    const json = JSON.stringify({
      id: "evt-1",
      type: "job.created",
      namespace: "team-a",
      occurredAt: "2026-01-01T09:00:00Z",
      ingestedAt: "2026-01-01T09:59:59.995Z",
      data: "{}",
      routing: "routed",
      deliveryIds: [hash.id],
    });
    expect(decodeEvent("team-a", "evt-1", json)).toEqual(JSON.parse(json));
  });
});
