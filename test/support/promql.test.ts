import { describe, expect, it } from "vitest";
import { promqlUses } from "./promql.ts";

describe("promqlUses", () => {
  it("finds selectors with their matchers, and grouping labels", () => {
    const use = promqlUses(
      'histogram_quantile(0.99, sum by (le, outcome) (rate(x_seconds_bucket{job="$job",namespace=~"a|b"}[$__rate_interval])))',
    );
    expect(use.selectors).toEqual([
      {
        metric: "x_seconds_bucket",
        matchers: [
          { label: "job", op: "=", value: "$job" },
          { label: "namespace", op: "=~", value: "a|b" },
        ],
      },
    ]);
    expect(use.grouping).toEqual(["le", "outcome"]);
  });

  it("finds bare metric names and skips functions, keywords, numbers and durations", () => {
    const use = promqlUses(
      "(max(up) or vector(0)) < 1 and on (job) sum(rate(a_total[5m] offset 1h)) / ignoring(x) b > bool 1e3",
    );
    expect(use.selectors.map((s) => s.metric)).toEqual(["up", "a_total", "b"]);
    expect(use.grouping).toEqual(["job", "x"]);
  });

  it("reads braces and quotes inside matcher values as values", () => {
    const use = promqlUses('sum without (pod) (m{path=~"/a{1,2}",msg!="x \\" y"}) by (z)');
    expect(use.selectors).toEqual([
      {
        metric: "m",
        matchers: [
          { label: "path", op: "=~", value: "/a{1,2}" },
          { label: "msg", op: "!=", value: 'x " y' },
        ],
      },
    ]);
    expect(use.grouping).toEqual(["pod", "z"]);
  });
});
