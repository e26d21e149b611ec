import { describe, expect, it } from "vitest";
import {
  compileFilter,
  FILTER_ITERATION_BUDGET,
  FilterCompileError,
  type FilterEvent,
  filterError,
  MAX_FILTER_DEPTH,
  MAX_FILTER_LENGTH,
  MAX_FILTER_NESTING,
} from "./event-filter.ts";

function event(data: unknown, type = "payment.received"): FilterEvent {
  return { id: "evt-1", type, timestamp: "2026-11-30T08:00:00Z", namespace: "acme", data };
}

const payment = event({ amount: 150, currency: "EUR", customer: { tier: "gold" }, tags: ["vip", "eu"] });

describe("compileFilter: what matches", () => {
  it.each([
    ["event.type == 'payment.received'", true],
    ["event.type.startsWith('job.')", false],
    ["event.data.amount > 100", true],
    ["event.data.amount >= 150.0 && event.data.currency == 'EUR'", true],
    ["event.data.amount == 150", true],
    ["event.data.customer.tier in ['gold', 'platinum']", true],
    ["'vip' in event.data.tags", true],
    ["event.data.tags.exists(t, t == 'us')", false],
    ["has(event.data.refund) ? event.data.refund : true", true],
    ["has(event.data.refund)", false],
    ["event.namespace == 'acme' && event.id.size() > 0", true],
    ["event.data.currency.matches('^(EUR|USD)$')", true],
    ["timestamp(event.timestamp) > timestamp('2026-01-01T00:00:00Z')", true],
  ])("%s → %s", (source, matched) => {
    expect(compileFilter(source).evaluate(payment)).toEqual(
      matched ? { matched: true } : { matched: false, reason: "no-match" },
    );
  });

  it("a compiled filter is reused across events", () => {
    const filter = compileFilter("event.data.amount > 100");
    expect(filter.evaluate(event({ amount: 101 })).matched).toBe(true);
    expect(filter.evaluate(event({ amount: 99 })).matched).toBe(false);
    expect(filter.evaluate(event({ amount: 1000 })).matched).toBe(true);
  });
});

describe("compileFilter: evaluation errors are not matches, with the reason", () => {
  it.each([
    ["event.data.missing == 1", /no such key|not found/],
    ["event.data.currency > 1", /overload/],
    ["event.data.amount + 1 > 0", /overload/], // JSON numbers are doubles: 1.0
    ["event.type", /evaluated to a string, not a bool/],
  ])("%s", (source, message) => {
    const outcome = compileFilter(source).evaluate(payment);
    expect(outcome).toMatchObject({ matched: false, reason: "error" });
    expect(outcome.matched === false && "message" in outcome && outcome.message).toMatch(message);
  });

  it("data fields never reach the object prototype", () => {
    for (const field of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      expect(compileFilter(`has(event.data.${field})`).evaluate(payment)).toEqual({
        matched: false,
        reason: "no-match",
      });
    }
  });
});

describe("compileFilter: refused when compiled, with the compiler's message", () => {
  it.each([
    ["event.type == ", /^syntax error: at 1:\d+: /],
    ["event.type == 'a' &&", /^syntax error/],
    ["", /empty/],
    ["evnt.type == 'job.created'", /undeclared reference to 'evnt'/],
    ["process.env.SECRET == 'x'", /undeclared reference to 'process'/],
    ["foo(event.type)", /undeclared function 'foo'/],
    ["event.type.shout()", /undeclared function 'shout'/],
    ["google.protobuf.Duration{seconds: 1} != null", /unknown type|undeclared/],
  ])("%j", (source, message) => {
    expect(() => compileFilter(source)).toThrow(FilterCompileError);
    expect(filterError(source)).toMatch(message);
  });

  it("a comprehension's variables are in scope inside it only", () => {
    expect(filterError("event.data.tags.exists(t, t == 'vip')")).toBeUndefined();
    expect(filterError("event.data.tags.exists(t, t == 'vip') && t == 'x'")).toMatch(
      /undeclared reference to 't'/,
    );
  });

  it("bounds the size and nesting of hostile expressions", () => {
    expect(filterError(`event.type == '${"x".repeat(MAX_FILTER_LENGTH)}'`)).toMatch(/longer than 1024/);
    // the parser recurses per bracket and overflows the stack near 500: refused before parsing
    const parens = (n: number) => `${"(".repeat(n)}true${")".repeat(n)}`;
    expect(filterError(parens(MAX_FILTER_NESTING))).toBeUndefined();
    expect(filterError(parens(MAX_FILTER_NESTING + 1))).toMatch(/nests brackets 33 deep/);
    expect(filterError(parens(500))).toMatch(/nests brackets/);
    // brackets inside string literals are text
    expect(filterError(`event.type == '${"(".repeat(100)}'`)).toBeUndefined();
    // a long chain is a deep tree, even without brackets
    expect(
      filterError(
        `${Array(MAX_FILTER_DEPTH + 5)
          .fill("1.0")
          .join(" + ")} > 0.0`,
      ),
    ).toMatch(/more than 100 levels/);
    expect(filterError(`has(event${".a".repeat(MAX_FILTER_DEPTH)})`)).toMatch(/more than 100 levels/);
  });
});

describe("compileFilter: the run-time budget", () => {
  const big = event({ items: Array.from({ length: 2 * FILTER_ITERATION_BUDGET }, (_, i) => i) });

  it("allows comprehensions within the budget", () => {
    const small = event({ items: Array.from({ length: FILTER_ITERATION_BUDGET }, (_, i) => i) });
    expect(compileFilter("event.data.items.all(i, i >= 0.0)").evaluate(small)).toEqual({ matched: true });
  });

  it.each([
    "event.data.items.exists(i, i < 0.0)",
    "event.data.items.map(i, i * 2.0).size() > 0",
    // a budget error inside || must not be absorbed by the other side
    "event.data.items.exists(i, i < 0.0) || true",
    // nested: 20 × 20 × 20 = 8000 iterations
    "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].all(a, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].all(b, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].all(c, a > 0)))",
  ])("stops %s over the budget, quickly", (source) => {
    const filter = compileFilter(source);
    const started = performance.now();
    const outcome = filter.evaluate(big);
    // (or, on a machine too busy for the iterations, over the time backstop)
    expect(outcome).toMatchObject({ matched: false, reason: "limit" });
    expect(outcome.matched === false && "message" in outcome && outcome.message).toMatch(
      /^the filter ran over its budget \((more than 1000 iterations|longer than 250 ms)\)$/,
    );
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("the budget is per evaluation", () => {
    const filter = compileFilter("event.data.items.exists(i, i < 0.0)");
    expect(filter.evaluate(big)).toMatchObject({ reason: "limit" });
    expect(filter.evaluate(event({ items: [1, -1] }))).toEqual({ matched: true });
  });

  it("string growth is bounded by the expression's size", () => {
    const s = event({ s: "x".repeat(64 * 1024) });
    const doubling = "((((event.data.s + event.data.s) + (event.data.s + event.data.s)))) + event.data.s";
    expect(compileFilter(`size(${doubling}) > 0`).evaluate(s)).toEqual({ matched: true });
  });
});
