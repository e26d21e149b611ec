// The metrics the two processes export, with their types and label names: the one source of
// truth for the tests that check metric names written elsewhere (the README's table, the chart's
// alerts and Grafana dashboard).
//   dispatcher: its real registry (dispatcher/metrics.ts createMetrics).
//   operator:   every metric declared in operator/ through the helpers of
//               operator/controller/metrics.ts (`counter(registry, "name", "help", ["label", …])`),
//               read from the source, and prom-client's default process metrics, which the
//               Manager collects. Declarations must spell name and labels as literals: the
//               reader counts the helper calls and fails on one it cannot read.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { collectDefaultMetrics, Registry } from "prom-client";
import { createMetrics } from "../../dispatcher/metrics.ts";
import type { Matcher, PromqlUse } from "./promql.ts";

export type Process = "dispatcher" | "operator";

export interface ExportedMetric {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary";
  labels: string[];
}

const repo = join(import.meta.dirname, "..", "..");

export async function exportedMetrics(): Promise<Record<Process, Map<string, ExportedMetric>>> {
  return { dispatcher: dispatcherMetrics(), operator: await operatorMetrics() };
}

function fromRegistry(registry: Registry): Map<string, ExportedMetric> {
  const metrics = new Map<string, ExportedMetric>();
  for (const metric of registry.getMetricsAsArray()) {
    const { name, type, labelNames } = metric as typeof metric & { labelNames?: readonly string[] };
    metrics.set(name, {
      name,
      type: String(type) as ExportedMetric["type"],
      labels: [...(labelNames ?? [])],
    });
  }
  return metrics;
}

function dispatcherMetrics(): Map<string, ExportedMetric> {
  return fromRegistry(createMetrics(async () => null).registry);
}

/** Sources of operator/ (no tests), by path. */
async function operatorSources(): Promise<Map<string, string>> {
  const dir = join(repo, "operator");
  const files = (await readdir(dir, { recursive: true })).filter(
    (f) => f.endsWith(".ts") && !f.endsWith(".test.ts"),
  );
  return new Map(
    await Promise.all(files.map(async (f) => [f, await readFile(join(dir, f), "utf8")] as const)),
  );
}

const HELPER_CALL = /\b(counter|gauge|histogram)\(/g;
const DECLARATION =
  /\b(counter|gauge|histogram)\(\s*[\w.]+,\s*"([a-zA-Z_:][\w:]*)",\s*"(?:[^"\\]|\\.)*",\s*\[([^\]]*)\]/g;

async function operatorMetrics(): Promise<Map<string, ExportedMetric>> {
  const sources = await operatorSources();
  const defaults = new Registry();
  collectDefaultMetrics({ register: defaults });
  const metrics = [...sources.values()].some((s) => s.includes("collectDefaultMetrics("))
    ? fromRegistry(defaults)
    : new Map<string, ExportedMetric>();
  for (const [file, source] of sources) {
    if (file === join("controller", "metrics.ts")) continue; // the helpers themselves
    const calls = [...source.matchAll(HELPER_CALL)].length;
    const declared = [...source.matchAll(DECLARATION)];
    if (declared.length !== calls)
      throw new Error(
        `operator/${file}: ${calls - declared.length} metric declaration(s) without literal name and labels`,
      );
    for (const [, type, name, labels] of declared) {
      const labelNames = [...(labels ?? "").matchAll(/"([^"]+)"/g)].map((m) => m[1] ?? "");
      metrics.set(name ?? "", { name: name ?? "", type: type as ExportedMetric["type"], labels: labelNames });
    }
  }
  return metrics;
}

/**
 * The exported metric a series name belongs to, and the labels that series can carry: a
 * histogram `x` is scraped as `x_bucket{le}`, `x_sum` and `x_count`, a summary as `x{quantile}`,
 * `x_sum` and `x_count`.
 */
export function metricOfSeries(
  metrics: Map<string, ExportedMetric>,
  series: string,
): { metric: ExportedMetric; labels: string[] } | undefined {
  const exact = metrics.get(series);
  if (exact?.type === "summary") return { metric: exact, labels: [...exact.labels, "quantile"] };
  if (exact && exact.type !== "histogram") return { metric: exact, labels: exact.labels };
  const suffix = series.match(/_(bucket|sum|count)$/)?.[1];
  const base = suffix ? metrics.get(series.slice(0, -suffix.length - 1)) : undefined;
  if (!base || (base.type !== "histogram" && base.type !== "summary")) return undefined;
  if (suffix === "bucket" && base.type !== "histogram") return undefined;
  return { metric: base, labels: suffix === "bucket" ? [...base.labels, "le"] : base.labels };
}

/** Labels Prometheus adds to every series it scrapes through a prometheus-operator ServiceMonitor. */
export const TARGET_LABELS = ["job", "namespace", "instance", "pod", "service", "endpoint", "container"];

/**
 * What is wrong with a PromQL query against the exported metrics: every selector must name the
 * job it reads (`processesOf` maps its `job` matcher to the processes behind it), a metric each of
 * those processes exports, and only labels that metric's series carry; grouping labels and
 * `extraLabels` (e.g. a Grafana legend's) must be labels of one of the selected series.
 */
export function queryProblems(
  use: PromqlUse,
  metrics: Record<Process, Map<string, ExportedMetric>>,
  processesOf: (job: Matcher | undefined) => Process[],
  extraLabels: readonly string[] = [],
): string[] {
  const problems: string[] = [];
  const available = new Set(TARGET_LABELS);
  for (const { metric, matchers } of use.selectors) {
    const processes = processesOf(matchers.find((m) => m.label === "job"));
    if (processes.length === 0) problems.push(`${metric}: no job matcher of this release`);
    for (const process of processes) {
      const series = metricOfSeries(metrics[process], metric);
      if (!series) {
        problems.push(`${metric}: not exported by the ${process}`);
        continue;
      }
      for (const label of series.labels) available.add(label);
      for (const { label } of matchers)
        if (!TARGET_LABELS.includes(label) && !series.labels.includes(label))
          problems.push(`${metric}{${label}}: the ${process}'s ${series.metric.name} has no label ${label}`);
    }
  }
  for (const label of [...use.grouping, ...extraLabels])
    if (!available.has(label)) problems.push(`label ${label}: none of the selected series carries it`);
  return problems;
}
