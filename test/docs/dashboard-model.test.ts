// The dashboard picture's model (test/docs/dashboard-model.ts) on every panel of the chart's
// dashboard: the picture draws each panel, fills in each query's variables and places each panel
// on the page, so a new panel type, variable or unit shows up here, not as a blank in the picture.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type Dashboard,
  formatValue,
  GRID_COLUMNS,
  gridHeight,
  layout,
  legendOf,
  PANEL_TYPES,
  panelsOf,
  rateIntervalSeconds,
  substitute,
  thresholdColor,
  UNITS,
} from "./dashboard-model.ts";

const file = join(
  import.meta.dirname,
  "..",
  "..",
  "charts",
  "dataforce-webhooks",
  "files",
  "grafana-dashboard.json",
);
const dashboard = JSON.parse(readFileSync(file, "utf8")) as Dashboard;
const panels = panelsOf(dashboard);
const VALUES = {
  namespace: "dataforce-system",
  dispatcher: "dataforce-webhooks-dispatcher-metrics",
  operator: "dataforce-webhooks-operator-metrics",
  __rate_interval: "4s",
};

describe("the dashboard picture's model", () => {
  it("knows every panel's type and unit", () => {
    expect(panels.length).toBeGreaterThan(40);
    for (const panel of panels) {
      expect(PANEL_TYPES, panel.title).toContain(panel.type);
      const unit = panel.fieldConfig?.defaults?.unit;
      if (unit !== undefined) expect(UNITS, `${panel.title}: ${unit}`).toContain(unit);
    }
  });

  it("fills in every variable of every query", () => {
    const queryVariables = dashboard.templating.list.filter((v) => v.type === "query").map((v) => v.name);
    expect(Object.keys(VALUES)).toEqual([...queryVariables, "__rate_interval"]);
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => substitute(t.expr, VALUES)));
    expect(exprs.length).toBeGreaterThan(40);
    expect(exprs.filter((e) => e.includes("$"))).toEqual([]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
    expect(substitute('a{job="${dispatcher}"}[[namespace]] $other', VALUES)).toBe(
      'a{job="dataforce-webhooks-dispatcher-metrics"}dataforce-system $other',
    );
  });

  it("names series by legendFormat, and by their labels without one", () => {
    expect(legendOf("{{verb}} {{ resource }}", { verb: "create", resource: "events" })).toBe("create events");
    expect(legendOf("filtered out: {{reason}}", {})).toBe("filtered out: ");
    expect(legendOf(undefined, { __name__: "up", job: "x" })).toBe('up{job="x"}');
    expect(legendOf("", {})).toBe("value");
  });

  it("places every panel inside the page, as wide as its columns, without overlap", () => {
    const width = 1600;
    const rects = panels.map((p) => ({ panel: p, rect: layout(p.gridPos, width) }));
    for (const { panel, rect } of rects) {
      expect(rect.left, panel.title).toBeGreaterThanOrEqual(0);
      expect(rect.left + rect.width, panel.title).toBeLessThanOrEqual(width);
      expect(rect.top + rect.height, panel.title).toBeLessThanOrEqual(gridHeight(panels));
      expect(rect.width, panel.title).toBeGreaterThan(0);
    }
    for (const a of rects)
      for (const b of rects) {
        if (a === b) continue;
        const apart =
          a.rect.left + a.rect.width <= b.rect.left ||
          b.rect.left + b.rect.width <= a.rect.left ||
          a.rect.top + a.rect.height <= b.rect.top ||
          b.rect.top + b.rect.height <= a.rect.top;
        expect(apart, `${a.panel.title} overlaps ${b.panel.title}`).toBe(true);
      }
    const full = layout({ x: 0, y: 0, w: GRID_COLUMNS, h: 1 }, width);
    expect(full.left + full.width).toBeCloseTo(width - 8);
  });

  it("takes $__rate_interval as Grafana does: at least four scrape intervals", () => {
    expect(rateIntervalSeconds(1)).toBe(4);
    expect(rateIntervalSeconds(15)).toBe(60);
    expect(rateIntervalSeconds(15, 60)).toBe(75);
  });

  it("writes values in the panels' units and colors them by threshold", () => {
    expect(formatValue(12.345, "ops")).toBe("12.3 ops/s");
    expect(formatValue(0.0412, "percentunit")).toBe("4.12%");
    expect(formatValue(0.25, "s")).toBe("250 ms");
    expect(formatValue(84 * 1024 * 1024, "bytes")).toBe("84 MiB");
    expect(formatValue(1500, "short")).toBe("1.5 K");
    expect(formatValue(null, "short")).toBe("No data");
    const steps = [
      { color: "green", value: null },
      { color: "red", value: 0.1 },
    ];
    expect(thresholdColor(0.05, steps)).toBe("green");
    expect(thresholdColor(0.1, steps)).toBe("red");
  });
});
