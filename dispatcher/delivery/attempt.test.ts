import { Webhook as StandardWebhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { StoredAttemptSchema } from "../../contract/records.ts";
import { NamespaceRoutingSchema } from "../../contract/routing-config.ts";
import { prepareNamespace } from "../routing-table.ts";
import {
  attemptOutcome,
  attemptRecord,
  attemptRequest,
  handBackOutcome,
  refusedDestination,
} from "./attempt.ts";
import { decide } from "./decide.ts";
import type { AttemptResult } from "./http-client.ts";
import type { Work } from "./work.ts";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

function work(overrides: { url?: string; allowPlainHttp?: boolean; recordUrl?: string } = {}): Work {
  const url = overrides.url ?? "https://receiver.example/hook";
  const namespace = prepareNamespace(
    NamespaceRoutingSchema.parse({
      namespace: "team-a",
      enabled: true,
      allowPlainHttp: overrides.allowPlainHttp ?? false,
      signingSecrets: [SECRET],
      delivery: {
        maxAttempts: 3,
        timeoutMs: 2_500,
        backoff: { initialDelayMs: 1_000, maxDelayMs: 60_000, multiplier: 2 },
      },
      webhooks: [
        { name: "orders", event: "job.created", url, headers: { "X-Team": "a", "webhook-id": "forged" } },
      ],
    }),
  );
  return {
    owner: { attempt: async () => {}, handBack: () => {} },
    entryId: "1700000000000-0",
    deliveryId: "orders-abc",
    version: "4",
    namespace,
    webhook: namespace.webhooks.get("orders")!,
    payload: '{"type":"job.created","data":{"jobId":"J-1"}}',
    recordUrl: overrides.recordUrl ?? url,
    ingestedAt: 1_700_000_000_000,
    attemptCount: 2,
    cycleAttempts: 0,
  };
}

const result = (overrides: Partial<AttemptResult>): AttemptResult => ({
  startedAt: Date.parse("2026-01-01T00:00:00Z"),
  durationMs: 12,
  ok: false,
  abortRequested: false,
  ...overrides,
});

describe("attemptRequest", () => {
  it("POSTs the payload signed per Standard Webhooks, with the webhook's headers under the reserved ones", () => {
    const timestamp = Math.floor(Date.now() / 1000);
    const request = attemptRequest(work(), "dataforce-webhooks/1.0", timestamp);
    expect(request.url.href).toBe("https://receiver.example/hook");
    expect(request.timeoutMs).toBe(2_500);
    expect(request.headers).toMatchObject({
      "x-team": "a",
      "content-type": "application/json",
      "user-agent": "dataforce-webhooks/1.0",
      "webhook-id": "orders-abc",
      "webhook-timestamp": String(timestamp),
    });
    expect(new StandardWebhook(SECRET).verify(request.body, request.headers)).toEqual(
      JSON.parse(request.body),
    );
  });
});

describe("refusedDestination", () => {
  it("refuses plain http unless the namespace allows it, without a request", () => {
    const refused = refusedDestination(work({ url: "http://receiver.example/hook" }), 5);
    expect(refused).toMatchObject({
      ok: false,
      errorCode: "destination_refused",
      startedAt: 5,
      durationMs: 0,
    });
    expect(decide(refused!, 1, work().namespace.routing.delivery)).toEqual({
      kind: "failed",
      reason: "destination-refused",
    });
    expect(refusedDestination(work({ url: "http://receiver.example/hook", allowPlainHttp: true }), 5)).toBe(
      undefined,
    );
    expect(refusedDestination(work(), 5)).toBe(undefined);
  });
});

describe("attemptRecord", () => {
  it("numbers the attempt after every earlier one and keeps what the receiver said", () => {
    expect(
      attemptRecord(
        work(),
        result({ statusCode: 503, errorCode: "http_status", responseBodyPrefix: "busy" }),
      ),
    ).toEqual({
      number: 3,
      startedAt: "2026-01-01T00:00:00.000Z",
      durationMs: 12,
      statusCode: 503,
      errorCode: "http_status",
      responseBodyPrefix: "busy",
    });
  });
});

describe("attemptOutcome", () => {
  const now = 1_800_000_000_000;

  it("records SENT against the version read", () => {
    const w = work();
    const attempt = attemptRecord(w, result({ ok: true, statusCode: 204 }));
    expect(attemptOutcome(w, attempt, { kind: "sent" }, now)).toEqual({
      entryId: "1700000000000-0",
      id: "orders-abc",
      version: "4",
      kind: "sent",
      // packed for the record (StoredAttemptSchema): number, startedAt (epoch ms), duration, status
      attempt: `[3,${Date.parse(attempt.startedAt)},12,204]`,
    });
    expect(StoredAttemptSchema.decode(attemptOutcome(w, attempt, { kind: "sent" }, now).attempt!)).toEqual(
      attempt,
    );
  });

  it("schedules a retry after the backoff, and names the reason of a failure", () => {
    const w = work();
    const attempt = attemptRecord(w, result({ statusCode: 500 }));
    expect(attemptOutcome(w, attempt, { kind: "retry", delayMs: 4_000 }, now)).toMatchObject({
      kind: "retry",
      due: String(now + 4_000),
    });
    const failed = attemptOutcome(w, attempt, { kind: "failed", reason: "endpoint-gone" }, now);
    expect(failed).toMatchObject({ kind: "failed", reason: "endpoint-gone" });
    expect(failed.due).toBeUndefined();
  });

  it("records the URL used when the webhook's URL changed since the delivery was made", () => {
    const w = work({ recordUrl: "https://old.example/hook" });
    const outcome = attemptOutcome(w, attemptRecord(w, result({ ok: true })), { kind: "sent" }, now);
    expect(outcome.url).toBe("https://receiver.example/hook");
    const odd = work({ recordUrl: "https://old.example/hook" });
    odd.webhook = { ...odd.webhook, url: new URL("https://receiver.example/a,b%2Fc") };
    const escaped = attemptOutcome(odd, attemptRecord(odd, result({ ok: true })), { kind: "sent" }, now);
    expect(escaped.url).toBe("https://receiver.example/a%2Cb%252Fc"); // escaped for the packed record
    expect(attemptOutcome(work(), attemptRecord(w, result({ ok: true })), { kind: "sent" }, now).url).toBe(
      undefined,
    );
  });
});

describe("handBackOutcome", () => {
  it("defers without an attempt", () => {
    expect(handBackOutcome(work(), 42)).toEqual({
      entryId: "1700000000000-0",
      id: "orders-abc",
      version: "4",
      kind: "defer",
      due: "42",
    });
  });
});
