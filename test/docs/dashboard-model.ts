// What the dashboard picture (test/docs/dashboard-picture.ts) needs of the Grafana dashboard JSON,
// without Grafana: its panels, their queries with the template variables filled in as Grafana
// would, where each panel sits on the 24-column grid, series names from `legendFormat` and values
// in the panels' units. Pure functions: the picture's page runs them in the browser, the unit test
// runs them on every panel of the chart's dashboard.

export interface Target {
  expr: string;
  refId: string;
  legendFormat?: string;
}

export interface ThresholdStep {
  color: string;
  value: number | null;
}

export interface FieldDefaults {
  unit?: string;
  decimals?: number;
  min?: number;
  thresholds?: { mode: string; steps: ThresholdStep[] };
  mappings?: Array<{ type: string; options: Record<string, { text?: string; color?: string }> }>;
  custom?: {
    fillOpacity?: number;
    stacking?: { mode: string };
    thresholdsStyle?: { mode: string };
  };
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: { defaults?: FieldDefaults };
}

export interface Dashboard {
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string }> };
}

/** The panel types the picture draws; a dashboard with another one fails the unit test. */
export const PANEL_TYPES = ["row", "stat", "timeseries"] as const;

/** Grafana's grid: 24 columns; a row unit is 30 px high, with 8 px between panels. */
export const GRID_COLUMNS = 24;
export const GRID_ROW_PX = 30;
export const GRID_MARGIN_PX = 8;

/** Every panel, those of collapsed rows too, in the JSON's order. */
export function panelsOf(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/**
 * Grafana's `$__rate_interval`: max($__interval + scrape interval, 4 × scrape interval). With the
 * datasource's scrape interval as the minimum `$__interval`, a short range is 4 × scrape.
 */
export function rateIntervalSeconds(scrapeSeconds: number, intervalSeconds = scrapeSeconds): number {
  return Math.max(Math.max(intervalSeconds, scrapeSeconds) + scrapeSeconds, 4 * scrapeSeconds);
}

/** Fills in `$name`, `${name}` and `[[name]]`; leaves unknown variables as they are. */
export function substitute(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(
    /\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]/g,
    (whole, braced?: string, bare?: string, bracketed?: string) =>
      values[braced ?? bare ?? bracketed ?? ""] ?? whole,
  );
}

/** A series' name: `legendFormat` with `{{label}}` filled in, else the PromQL series selector. */
export function legendOf(format: string | undefined, labels: Readonly<Record<string, string>>): string {
  if (format === undefined || format === "" || format === "__auto") {
    const { __name__: name = "", ...rest } = labels;
    const inner = Object.entries(rest)
      .map(([k, v]) => `${k}="${v}"`)
      .join(", ");
    return inner === "" ? name || "value" : `${name}{${inner}}`;
  }
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label: string) => labels[label] ?? "");
}

export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** A gridPos in pixels on a page `width` px wide, as Grafana lays it out. */
export function layout(gridPos: Panel["gridPos"], width: number): Rect {
  const column = (width - GRID_MARGIN_PX) / GRID_COLUMNS;
  const row = GRID_ROW_PX + GRID_MARGIN_PX;
  return {
    left: GRID_MARGIN_PX + gridPos.x * column,
    top: GRID_MARGIN_PX + gridPos.y * row,
    width: gridPos.w * column - GRID_MARGIN_PX,
    height: gridPos.h * row - GRID_MARGIN_PX,
  };
}

/** The page height that holds every panel. */
export function gridHeight(panels: readonly Panel[]): number {
  const rows = Math.max(0, ...panels.map((p) => p.gridPos.y + p.gridPos.h));
  return GRID_MARGIN_PX + rows * (GRID_ROW_PX + GRID_MARGIN_PX);
}

/** The units the dashboard uses, as Grafana writes them; others are shown as plain numbers. */
export const UNITS = ["ops", "percentunit", "short", "s", "bytes"] as const;

function trim(value: number, decimals: number | undefined): string {
  const digits = decimals ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toFixed(digits).replace(/\.0+$|(\.\d*?)0+$/, "$1");
}

function scaled(value: number, decimals: number | undefined, base: number, suffixes: string[]): string {
  let i = 0;
  let v = value;
  while (Math.abs(v) >= base && i < suffixes.length - 1) {
    v /= base;
    i++;
  }
  return `${trim(v, decimals)}${suffixes[i]}`;
}

/** A value in a Grafana unit: `ops` as ops/s, `percentunit` as %, `s` from µs to h, IEC bytes. */
export function formatValue(value: number | null, unit: string | undefined, decimals?: number): string {
  if (value === null || Number.isNaN(value)) return "No data";
  switch (unit) {
    case "ops":
      return `${scaled(value, decimals, 1000, ["", "K", "M", "G"])} ops/s`;
    case "percentunit":
      return `${trim(value * 100, decimals)}%`;
    case "bytes":
      return scaled(value, decimals, 1024, [" B", " KiB", " MiB", " GiB", " TiB"]);
    case "s": {
      const abs = Math.abs(value);
      if (abs === 0) return "0 s";
      if (abs < 1e-3) return `${trim(value * 1e6, decimals)} µs`;
      if (abs < 1) return `${trim(value * 1e3, decimals)} ms`;
      if (abs < 60) return `${trim(value, decimals)} s`;
      if (abs < 3600) return `${trim(value / 60, decimals)} min`;
      return `${trim(value / 3600, decimals)} hour`;
    }
    default:
      return scaled(value, decimals, 1000, ["", " K", " Mil", " Bil"]);
  }
}

/** The color of a value by the panel's absolute thresholds (the last step it reaches). */
export function thresholdColor(value: number | null, steps: readonly ThresholdStep[] | undefined): string {
  let color = steps?.[0]?.color ?? "green";
  for (const step of steps ?? [])
    if (step.value !== null && value !== null && value >= step.value) color = step.color;
  return color;
}

/** Grafana's named colors, dark theme. */
export const NAMED_COLORS: Readonly<Record<string, string>> = {
  green: "#73BF69",
  orange: "#FF9830",
  red: "#F2495C",
  yellow: "#FADE2A",
  blue: "#5794F2",
  purple: "#B877D9",
};

/** Grafana's classic palette, in its order: series take the next color. */
export const CLASSIC_PALETTE = [
  "#7EB26D",
  "#EAB839",
  "#6ED0E0",
  "#EF843C",
  "#E24D42",
  "#1F78C1",
  "#BA43A9",
  "#705DA0",
  "#508642",
  "#CCA300",
  "#447EBC",
  "#C15C17",
];

/** What the picture's page is given (window.dashboardConfig). */
export interface PageConfig {
  dashboard: Dashboard;
  /** Template variables, `__rate_interval` included. */
  variables: Record<string, string>;
  /** The range (epoch seconds) and the step of every range query. */
  start: number;
  end: number;
  step: number;
  width: number;
  /** A line under the title: where the picture comes from. */
  note: string;
}

/** What the page reports once every panel is drawn (window.dashboardResult). */
export interface PageResult {
  /** Titles of the panels without data. */
  empty: string[];
  /** Query errors, panels it could not draw. */
  errors: string[];
}
