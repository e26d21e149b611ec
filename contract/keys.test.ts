import { describe, expect, it } from "vitest";
import { keyspace } from "./keys.ts";
import { ALL_SCRIPTS } from "./scripts/index.ts";

// The scripts build per-record keys from the prefix themselves: pin both spellings together.
describe("keyspace", () => {
  const keys = keyspace("x");
  const lua = ALL_SCRIPTS.map((script) => script.lua).join("\n");

  it("puts every key under one hash tag", () => {
    expect(keys.prefix).toBe("{x}:");
    for (const key of [
      keys.events,
      keys.deliveries,
      keys.scheduled,
      keys.status,
      keys.routing,
      keys.logAll,
    ]) {
      expect(key.startsWith("{x}:")).toBe(true);
    }
  });

  it("spells per-record keys as the scripts do", () => {
    expect(keys.delivery("d")).toBe("{x}:delivery:d");
    expect(lua).toContain("prefix .. 'delivery:' ..");
    expect(keys.event("ns", "e")).toBe("{x}:event:ns:e");
    expect(lua).toContain("prefix .. 'event:' .. e.ns .. ':' .. e.id");
    expect(keys.seen("ns", "e")).toBe("{x}:seen:ns:e");
    expect(lua).toContain("prefix .. 'seen:' .. e.ns .. ':' .. e.id");
    expect(keys.logNamespace("ns")).toBe("{x}:logs:ns:ns");
    expect(lua).toContain("prefix .. 'logs:ns:' .. namespace");
    expect(keys.logWebhook("ns", "w")).toBe("{x}:logs:ns:ns:webhook:w");
    expect(lua).toContain("nsIndex .. ':webhook:' .. webhook");
    expect(keys.orderedQueue("ns", "w")).toBe("{x}:ordered:ns:w");
    expect(lua).toContain("prefix .. 'ordered:' .. namespace .. ':' .. webhook");
    expect(keys.orderedQueues).toBe("{x}:ordered-queues");
    expect(lua).toContain("prefix .. 'ordered-queues'");
    // format 1's indexes, still read (and trimmed) until retention has emptied them
    expect(keys.legacyLog.namespace("ns")).toBe("{x}:log:ns:ns");
    expect(keys.legacyLog.webhook("ns", "w")).toBe("{x}:log:ns:ns:webhook:w");
  });

  it("refuses tags that would break the hash tag", () => {
    expect(() => keyspace("a}b")).toThrow();
    expect(() => keyspace("")).toThrow();
  });
});
