// The chart's Grafana dashboard (files/grafana-dashboard.json, shipped by
// templates/grafana-dashboard-configmap.yaml): a well-formed dashboard whose every query is PromQL
// that promtool parses and reads only metrics and labels that the process behind the selected job
// exports (test/support/exported-metrics.ts), covering the README's metrics table.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { exportedMetrics, type Process, queryProblems, TARGET_LABELS } from "../support/exported-metrics.ts";
import { type Matcher, promqlUses } from "../support/promql.ts";
import { chartDir, renderChart, repoRoot } from "./helm.ts";
import { runPromtool } from "./prometheus.ts";

interface Target {
  expr: string;
  refId: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const file = join(chartDir, "files", "grafana-dashboard.json");
const text = readFileSync(file, "utf8");
const dashboard = JSON.parse(text) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queries = panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
const DATASOURCE = { type: "prometheus", uid: "${datasource}" };

/** The processes a selector's job matcher picks: `$dispatcher`, `$operator`, or both as a regex. */
function processesOf(job: Matcher | undefined): Process[] {
  const byVariable: Record<string, Process> = { $dispatcher: "dispatcher", $operator: "operator" };
  if (!job) return [];
  const values = job.op === "=" ? [job.value] : job.op === "=~" ? job.value.split("|") : [];
  const processes = values.map((v) => byVariable[v]);
  return processes.every((p) => p !== undefined) ? processes : [];
}

describe("the Grafana dashboard", () => {
  it("is a dashboard Grafana loads: unique ids, panels on the 24-column grid without overlap", () => {
    expect(dashboard.uid).toBe("dataforce-webhooks");
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const cells = new Map<string, string>();
    for (const panel of panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x >= 0 && w > 0 && x + w <= 24 && h > 0, `${panel.title}: gridPos`).toBe(true);
      for (let row = y; row < y + h; row++)
        for (let col = x; col < x + w; col++) {
          const other = cells.get(`${row}:${col}`);
          expect(other, `${panel.title} overlaps ${other}`).toBeUndefined();
          cells.set(`${row}:${col}`, panel.title);
        }
    }
  });

  it("queries the Prometheus of the datasource variable, each query with its own refId", () => {
    expect(dashboard.templating.list.find((v) => v.name === "datasource")).toMatchObject({
      type: "datasource",
      query: "prometheus",
    });
    expect(queries.length).toBeGreaterThan(30);
    for (const panel of panels.filter((p) => p.type !== "row")) {
      expect(panel.datasource, panel.title).toEqual(DATASOURCE);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(refIds.length, `${panel.title}: no query`).toBeGreaterThan(0);
      expect(new Set(refIds).size, `${panel.title}: refIds`).toBe(refIds.length);
      for (const target of panel.targets ?? []) expect(target.datasource ?? DATASOURCE).toEqual(DATASOURCE);
    }
  });

  it("reads only metrics and labels that the process of the selected job exports, in the selected namespace", async () => {
    const metrics = await exportedMetrics();
    const problems = queries.flatMap(({ panel, target }) => {
      const use = promqlUses(target.expr);
      const legend = [...(target.legendFormat ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1] ?? "");
      const unscoped = use.selectors
        .filter(
          (s) => !s.matchers.some((m) => m.label === "namespace" && m.op === "=" && m.value === "$namespace"),
        )
        .map((s) => `${s.metric}: not limited to namespace="$namespace"`);
      return [...unscoped, ...queryProblems(use, metrics, processesOf, legend)].map(
        (problem) => `${panel.title} (${target.refId}): ${problem}`,
      );
    });
    expect(problems).toEqual([]);
  });

  it("picks the installation with variables that read exported metrics and labels", async () => {
    const metrics = await exportedMetrics();
    const variables = dashboard.templating.list.filter((v) => v.type === "query");
    expect(variables.map((v) => v.name)).toEqual(["namespace", "dispatcher", "operator"]);
    for (const variable of variables) {
      const query = typeof variable.query === "string" ? variable.query : variable.query.query;
      const [, selector, label] = query.match(/^label_values\((.+),\s*(\w+)\)$/) ?? [];
      expect(selector, `${variable.name}: ${query}`).toBeDefined();
      const [{ metric } = { metric: "" }] = promqlUses(selector ?? "").selectors;
      const process: Process = variable.name === "operator" ? "operator" : "dispatcher";
      expect(metrics[process].has(metric), `${variable.name}: ${metric}`).toBe(true);
      expect(TARGET_LABELS).toContain(label);
    }
  });

  it("shows every metric of the README's metrics table", () => {
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("### Metrics"), readme.indexOf("### Alerts"));
    const documented = [...table.matchAll(/^\| (.*?) \|/gm)].flatMap((row) =>
      [...(row[1] ?? "").matchAll(/`([a-z_]+)(?:\{[^`]*\})?`/g)].map((m) => m[1] ?? ""),
    );
    expect(documented.length).toBeGreaterThan(15);
    const shown = new Set(
      queries.flatMap(({ target }) =>
        promqlUses(target.expr).selectors.map((s) => s.metric.replace(/_(bucket|sum|count)$/, "")),
      ),
    );
    expect(documented.filter((name) => !shown.has(name))).toEqual([]);
  });

  it("has only queries that Prometheus parses (promtool check rules)", async () => {
    const values: Record<string, string> = {
      namespace: "dataforce-system",
      dispatcher: "dfw-dataforce-webhooks-dispatcher-metrics",
      operator: "dfw-dataforce-webhooks-operator-metrics",
      __rate_interval: "1m",
    };
    const substitute = (expr: string) =>
      expr.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => values[name] ?? whole);
    const rules = queries.map(({ panel, target }) => ({
      record: `dashboard:panel${panel.id}_${target.refId}`,
      expr: substitute(target.expr),
    }));
    expect(rules.filter((r) => r.expr.includes("$"))).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), "dfw-dashboard-"));
    try {
      writeFileSync(join(dir, "queries.yaml"), stringify({ groups: [{ name: "dashboard", rules }] }));
      const result = await runPromtool(["check", "rules", "queries.yaml"], dir);
      expect(result.code, result.output).toBe(0);
      expect(result.output).toContain(`SUCCESS: ${rules.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the Grafana dashboard ConfigMap", () => {
  const configMaps = (objects: Awaited<ReturnType<typeof renderChart>>) =>
    objects.filter((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-grafana-dashboard"));

  it("is off by default", async () => {
    expect(configMaps(await renderChart({ namespace: "x" }))).toEqual([]);
  });

  it("carries the dashboard as is, with the Grafana sidecar's label", async () => {
    const [configMap, ...more] = configMaps(
      await renderChart({ namespace: "x", set: { "metrics.grafanaDashboard.enabled": "true" } }),
    );
    expect(more).toEqual([]);
    expect(configMap?.metadata.namespace).toBe("x");
    expect(configMap?.metadata.labels?.grafana_dashboard).toBe("1");
    expect(configMap?.data["dataforce-webhooks.json"]).toBe(text.trimEnd());
  });

  it("takes the sidecar's label, namespace, extra labels and folder annotation from the values", async () => {
    const [configMap] = configMaps(
      await renderChart({
        namespace: "x",
        set: {
          "metrics.grafanaDashboard.enabled": "true",
          "metrics.grafanaDashboard.namespace": "monitoring",
          "metrics.grafanaDashboard.label": "dashboards",
          "metrics.grafanaDashboard.labelValue": "webhooks",
          "metrics.grafanaDashboard.labels.team": "platform",
          "metrics.grafanaDashboard.annotations.grafana_folder": "Webhooks",
        },
      }),
    );
    expect(configMap?.metadata.namespace).toBe("monitoring");
    expect(configMap?.metadata.labels).toMatchObject({ dashboards: "webhooks", team: "platform" });
    expect(configMap?.metadata.labels?.grafana_dashboard).toBeUndefined();
    expect((configMap?.metadata as { annotations?: unknown } | undefined)?.annotations).toEqual({
      grafana_folder: "Webhooks",
    });
  });
});
