// The dashboard picture's page (bundled by test/docs/dashboard-picture.ts; type-checked with the
// DOM types of ./tsconfig.json): draws every panel of
// the Grafana dashboard JSON at its gridPos from the panel's own queries, run against Prometheus's
// HTTP API (same origin: the script's server passes /api/v1/ on), timeseries with uPlot, stat
// panels as Grafana's big number over a sparkline. Not Grafana: only what the dashboard uses.
import uPlot from "uplot";
import {
  CLASSIC_PALETTE,
  type FieldDefaults,
  formatValue,
  gridHeight,
  layout,
  legendOf,
  NAMED_COLORS,
  type PageConfig,
  type PageResult,
  type Panel,
  panelsOf,
  substitute,
  thresholdColor,
} from "../dashboard-model.ts";

declare global {
  interface Window {
    dashboardConfig: PageConfig;
    dashboardResult?: PageResult;
  }
}

interface Series {
  name: string;
  values: Map<number, number>;
}

interface MatrixResponse {
  status: string;
  error?: string;
  data?: { result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> };
}

const config = window.dashboardConfig;
/** Tick steps of a bytes axis: powers of two of B, KiB, MiB, GiB, as Grafana's. */
const BYTE_STEPS = [0, 1, 2, 3].flatMap((power) =>
  [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((m) => m * 1024 ** power),
);
const errors: string[] = [];
const empty: string[] = [];
const TEXT = "#ccccdc";
const GRID = "rgba(204, 204, 220, 0.08)";

function color(name: string): string {
  return NAMED_COLORS[name] ?? name;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  parent: HTMLElement,
  text?: string,
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  parent.append(el);
  return el;
}

async function queryRange(expr: string, legendFormat: string | undefined): Promise<Series[]> {
  const params = new URLSearchParams({
    query: substitute(expr, config.variables),
    start: String(config.start),
    end: String(config.end),
    step: String(config.step),
  });
  const response = await fetch(`/api/v1/query_range?${params}`);
  const body = (await response.json()) as MatrixResponse;
  if (body.status !== "success") throw new Error(body.error ?? `HTTP ${response.status}`);
  return (body.data?.result ?? []).map((r) => ({
    name: legendOf(legendFormat, r.metric),
    values: new Map(r.values.map(([t, v]) => [Math.round(t), Number(v)])),
  }));
}

async function seriesOf(panel: Panel): Promise<Series[]> {
  const perTarget = await Promise.all(
    (panel.targets ?? []).map((t) =>
      queryRange(t.expr, t.legendFormat).catch((error: unknown) => {
        errors.push(`${panel.title} (${t.refId}): ${String(error)}`);
        return [];
      }),
    ),
  );
  return perTarget.flat();
}

function timestamps(): number[] {
  const xs: number[] = [];
  for (let t = config.start; t <= config.end; t += config.step) xs.push(t);
  return xs;
}

function panelBox(panel: Panel, root: HTMLElement): { box: HTMLElement; body: HTMLElement } {
  const rect = layout(panel.gridPos, config.width);
  const box = element("div", `panel panel-${panel.type}`, root);
  Object.assign(box.style, {
    left: `${rect.left}px`,
    top: `${rect.top}px`,
    width: `${rect.width}px`,
    height: `${rect.height}px`,
  });
  element("div", "panel-title", box, panel.title);
  return { box, body: element("div", "panel-body", box) };
}

/** Last value that is not null, Grafana's `lastNotNull` reduction. */
function lastNotNull(series: Series, xs: readonly number[]): number | null {
  for (let i = xs.length - 1; i >= 0; i--) {
    const v = series.values.get(xs[i] ?? 0);
    if (v !== undefined && !Number.isNaN(v)) return v;
  }
  return null;
}

function statText(value: number | null, defaults: FieldDefaults): { text: string; color: string } {
  const mapped = value === null ? undefined : defaults.mappings?.find((m) => m.type === "value");
  const mapping = mapped?.options[String(value)];
  return {
    text: mapping?.text ?? formatValue(value, defaults.unit, defaults.decimals),
    color: color(mapping?.color ?? thresholdColor(value, defaults.thresholds?.steps)),
  };
}

async function drawStat(panel: Panel, root: HTMLElement): Promise<void> {
  const { box, body } = panelBox(panel, root);
  const defaults = panel.fieldConfig?.defaults ?? {};
  const series = await seriesOf(panel);
  const xs = timestamps();
  if (series.length === 0) {
    empty.push(panel.title);
    element("div", "no-data", body, "No data");
    return;
  }
  const values = series.map((s) => ({ name: s.name, ...statText(lastNotNull(s, xs), defaults) }));
  // colorMode background: the panel takes the color of its (first) value, as Grafana's
  box.style.background = values[0]?.color ?? "";
  const list = element("div", `stat-values stat-${values.length}`, body);
  for (const v of values) {
    const item = element("div", "stat-value", list);
    if (values.length > 1) element("div", "stat-name", item, v.name);
    element("div", "stat-number", item, v.text);
  }
  // graphMode area: the series behind the number
  const first = series[0];
  if (series.length === 1 && first) {
    const spark = element("div", "stat-spark", body);
    const data: uPlot.AlignedData = [xs, xs.map((t) => first.values.get(t) ?? null)];
    new uPlot(
      {
        width: spark.clientWidth,
        height: spark.clientHeight,
        legend: { show: false },
        cursor: { show: false },
        axes: [{ show: false }, { show: false }],
        scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max : 1] } },
        series: [{}, { stroke: "rgba(255,255,255,0.5)", fill: "rgba(255,255,255,0.12)", width: 1 }],
      },
      data,
      spark,
    );
  }
}

async function drawTimeseries(panel: Panel, root: HTMLElement): Promise<void> {
  const { body } = panelBox(panel, root);
  const defaults = panel.fieldConfig?.defaults ?? {};
  const series = await seriesOf(panel);
  const xs = timestamps();
  const hasData = series.some((s) => s.values.size > 0);
  if (!hasData) {
    empty.push(panel.title);
    element("div", "no-data", body, "No data");
    return;
  }
  const plot = element("div", "plot", body);
  const legend = element("div", "legend", body);
  const colors = series.map((_, i) => CLASSIC_PALETTE[i % CLASSIC_PALETTE.length] ?? TEXT);
  series.forEach((s, i) => {
    const item = element("span", "legend-item", legend);
    element("i", "legend-color", item).style.background = colors[i] ?? TEXT;
    item.append(s.name);
  });
  const columns = series.map((s) => xs.map((t) => s.values.get(t) ?? null));
  const alpha = Math.round(((defaults.custom?.fillOpacity ?? 0) / 100) * 255)
    .toString(16)
    .padStart(2, "0");
  // stacking "normal": each series drawn on top of those before it, its band filled in its color,
  // as Grafana stacks them
  const stacked = defaults.custom?.stacking?.mode === "normal";
  if (stacked)
    for (let i = 1; i < columns.length; i++) {
      const below = columns[i - 1] ?? [];
      columns[i] = (columns[i] ?? []).map((v, j) => (v === null ? null : v + (below[j] ?? 0)));
    }
  // Drawn from the smallest total up: a stacked series that adds nothing lies on the line of the
  // one below it, which must stay visible in its own color (the legend keeps the query's order).
  const total = (i: number) => [...(series[i]?.values.values() ?? [])].reduce((sum, v) => sum + (v || 0), 0);
  const order = series.map((_, i) => i);
  if (stacked) order.sort((a, b) => total(a) - total(b));
  const position = (i: number) => order.indexOf(i) + 1;
  const bands: uPlot.Band[] = stacked
    ? order.flatMap((i) =>
        i === 0 ? [] : [{ series: [position(i), position(i - 1)], fill: `${colors[i] ?? TEXT}${alpha}` }],
      )
    : [];
  const unit = defaults.unit;
  const thresholds =
    defaults.custom?.thresholdsStyle?.mode === "line"
      ? (defaults.thresholds?.steps ?? []).filter((s) => s.value !== null)
      : [];
  new uPlot(
    {
      width: plot.clientWidth,
      height: plot.clientHeight,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: true },
        y: {
          range: (_u, min, max) => {
            const low = defaults.min ?? Math.min(0, min);
            return [low, max > low ? max + (max - low) * 0.05 : low + 1];
          },
        },
      },
      axes: [
        {
          stroke: TEXT,
          grid: { stroke: GRID },
          ticks: { stroke: GRID },
          font: "11px Inter, sans-serif",
          // Grafana's short range format, in UTC as the range in the header
          values: (_u, splits) => splits.map((t) => new Date(t * 1000).toISOString().slice(11, 19)),
        },
        {
          stroke: TEXT,
          grid: { stroke: GRID },
          ticks: { stroke: GRID },
          font: "11px Inter, sans-serif",
          // as wide as the longest label
          size: (_u, values) => 14 + 6.5 * Math.max(3, ...(values ?? []).map((v) => v.length)),
          values: (_u, splits) => splits.map((v) => formatValue(v, unit)),
          ...(unit === "bytes" ? { incrs: BYTE_STEPS } : {}),
        },
      ],
      bands,
      series: [
        {},
        ...order.map((i) => {
          const stroke = colors[i] ?? TEXT;
          // a band fills a stacked series down to the one below; the lowest fills down to zero
          const fills = alpha !== "00" && (!stacked || i === 0);
          return {
            label: series[i]?.name ?? "",
            stroke,
            width: 1.5,
            fill: fills ? `${stroke}${alpha}` : undefined,
            points: { show: false },
            spanGaps: false,
          };
        }),
      ],
      hooks: {
        // thresholdsStyle "line": a dashed line at each threshold inside the plotted range
        draw: [
          (u) => {
            const ctx = u.ctx;
            for (const step of thresholds) {
              const y = u.valToPos(step.value ?? 0, "y", true);
              if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
              ctx.save();
              ctx.strokeStyle = color(step.color);
              ctx.setLineDash([6, 4]);
              ctx.beginPath();
              ctx.moveTo(u.bbox.left, y);
              ctx.lineTo(u.bbox.left + u.bbox.width, y);
              ctx.stroke();
              ctx.restore();
            }
          },
        ],
      },
    },
    [xs, ...order.map((i) => columns[i] ?? [])],
    plot,
  );
}

async function main(): Promise<void> {
  const { dashboard } = config;
  const header = element("header", "header", document.body);
  element("h1", "title", header, dashboard.title);
  const variables = element("div", "variables", header);
  for (const v of dashboard.templating.list) {
    const value = v.type === "datasource" ? "Prometheus" : (config.variables[v.name] ?? "");
    const item = element("span", "variable", variables);
    element("span", "variable-name", item, v.name);
    element("span", "variable-value", item, value);
  }
  const range = `${new Date(config.start * 1000).toISOString().slice(0, 19)}Z → ${new Date(config.end * 1000)
    .toISOString()
    .slice(11, 19)}Z`;
  element("span", "variable range", variables, range);
  element("div", "note", header, config.note);

  const panels = panelsOf(dashboard);
  const root = element("main", "grid", document.body);
  root.style.height = `${gridHeight(panels)}px`;
  const drawn: Array<Promise<void>> = [];
  for (const panel of panels) {
    if (panel.type === "row") {
      const rect = layout(panel.gridPos, config.width);
      const row = element("div", "row", root, panel.title);
      Object.assign(row.style, { left: `${rect.left}px`, top: `${rect.top}px`, width: `${rect.width}px` });
    } else if (panel.type === "stat") drawn.push(drawStat(panel, root));
    else if (panel.type === "timeseries") drawn.push(drawTimeseries(panel, root));
    else errors.push(`${panel.title}: panel type ${panel.type} is not drawn`);
  }
  await Promise.all(drawn);
  window.dashboardResult = { empty, errors };
}

main().catch((error: unknown) => {
  window.dashboardResult = { empty, errors: [...errors, String(error)] };
});
