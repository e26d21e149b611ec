import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { NamespaceRoutingSchema } from "../../contract/routing-config.ts";
import { prepareNamespace } from "../routing-table.ts";
import type { IncomingEvent } from "./fanout.ts";
import { WebhookFilters } from "./webhook-filters.ts";

const namespace = prepareNamespace(
  NamespaceRoutingSchema.parse({
    namespace: "shop",
    enabled: true,
    signingSecrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    webhooks: [
      { name: "all", event: "payment.received", url: "https://example.com/a" },
      {
        name: "large",
        event: "payment.received",
        url: "https://example.com/b",
        filter: "event.data.amount > 100.0",
      },
      {
        name: "typo",
        event: "payment.received",
        url: "https://example.com/c",
        filter: "int(event.data.card) > 0",
      },
      { name: "broken", event: "payment.received", url: "https://example.com/d", filter: "event.data.x ==" },
    ],
  }),
);
const subscribers = namespace.subscribers.get("payment.received") ?? [];

function event(id: string, data: Record<string, unknown>): IncomingEvent {
  return {
    type: "payment.received",
    namespace: "shop",
    id,
    occurredAt: "2026-11-30T08:00:00Z",
    data: JSON.stringify(data),
    ingestedAt: Date.now(),
  };
}

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { lines, filters: new WebhookFilters(logger) };
}

describe("WebhookFilters", () => {
  it("compiles each filter once per routing revision; one that does not compile is kept with its error", () => {
    expect([...namespace.filters.keys()]).toEqual(["large", "typo", "broken"]);
    expect(namespace.filters.get("broken")).toMatchObject({
      compileError: expect.stringMatching(/^syntax error/),
    });
  });

  it("selects the subscribers whose filter lets the event through, with the reason of each other", () => {
    const { filters } = capture();
    const selected = filters.select(namespace, subscribers, event("e-1", { amount: 150, card: "4242" }));
    expect(selected.routes.map((r) => r.name)).toEqual(["all", "large", "typo"]);
    expect(selected.filtered).toEqual(["error"]); // broken
    const small = filters.select(namespace, subscribers, event("e-2", { amount: 5, card: "x-secret-x" }));
    expect(small.routes.map((r) => r.name)).toEqual(["all"]);
    expect(small.filtered).toEqual(["no-match", "error", "error"]);
  });

  it("logs a failing filter once a minute per webhook, with the event id and never the event's data", () => {
    const { lines, filters } = capture();
    for (const id of ["e-1", "e-2", "e-3"]) {
      filters.select(namespace, subscribers, event(id, { amount: 5, card: "x-secret-x" }));
    }
    const warnings = lines.filter((l) => l.level === 40);
    // "broken" does not compile: logged once with the routing, not per event
    expect(warnings.map((l) => [l.webhook, l.eventId, l.reason])).toEqual([["typo", "e-1", "error"]]);
    expect(JSON.stringify(lines)).not.toContain("x-secret-x");
  });
});
