// The chart's alerts (templates/prometheusrule.yaml) on Prometheus's own rule engine: promtool
// (Debian's `prometheus` package; PROMTOOL_BIN overrides) checks the rendered rules and runs the
// unit tests of alerts.promtool.yaml — input series, and for every alert the times it must and
// must not fire. The series are labelled as the chart's ServiceMonitors label them (checked here
// against the rendered ServiceMonitors and Services), so an alert that selects the wrong job fails.
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { fullValuesFile, type K8sObject, renderChart } from "./helm.ts";

const run = promisify(execFile);
const promtool = process.env.PROMTOOL_BIN ?? "promtool";
/** The release and namespace the unit tests' series are labelled for. */
const RELEASE = "dfw";
const NAMESPACE = "dataforce-system";
const testFile = join(import.meta.dirname, "alerts.promtool.yaml");

interface PromtoolTests {
  rule_files: string[];
  tests: Array<{
    name: string;
    input_series: Array<{ series: string; values: string }>;
    alert_rule_test?: Array<{ eval_time: string; alertname: string; exp_alerts: unknown[] }>;
  }>;
}
const unitTests = parse(readFileSync(testFile, "utf8")) as PromtoolTests;

async function runPromtool(args: string[], cwd: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(promtool, args, { cwd, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (e.code === "ENOENT")
      throw new Error(`${promtool} not found: install Debian's prometheus (make deps)`);
    return {
      code: typeof e.code === "number" ? e.code : -1,
      output: `${e.stdout ?? ""}${e.stderr ?? e.message}`,
    };
  }
}

/** A Prometheus rule file (`groups:`) from the rendered PrometheusRule, in a fresh directory. */
function writeRuleFile(objects: K8sObject[], dir: string): Array<{ alert?: string; expr: string }> {
  const rules = objects.filter((o) => o.kind === "PrometheusRule");
  expect(rules).toHaveLength(1);
  writeFileSync(join(dir, "rules.yaml"), stringify(rules[0]?.spec));
  return rules[0]?.spec.groups.flatMap((g: { rules: unknown[] }) => g.rules);
}

const labelOf = (series: string, label: string) => series.match(new RegExp(`[{,]${label}="([^"]*)"`))?.[1];
const metricOf = (series: string) => series.match(/^[a-zA-Z_:][\w:]*/)?.[0] ?? "";

describe("the PrometheusRule on promtool", () => {
  let dir: string;
  let objects: K8sObject[];
  let alerts: string[];

  beforeAll(async () => {
    objects = await renderChart({
      namespace: NAMESPACE,
      releaseName: RELEASE,
      set: { "metrics.prometheusRule.enabled": "true", "metrics.serviceMonitor.enabled": "true" },
    });
    dir = mkdtempSync(join(tmpdir(), "dfw-alerts-"));
    alerts = writeRuleFile(objects, dir).flatMap((r) => (r.alert ? [r.alert] : []));
    copyFileSync(testFile, join(dir, "alerts.promtool.yaml"));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("promtool check rules accepts the rendered rules", async () => {
    const result = await runPromtool(["check", "rules", "rules.yaml"], dir);
    expect(result.output).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(result.code, result.output).toBe(0);
  });

  it("promtool check rules accepts them with every option set (ci/full-values.yaml, additionalRules)", async () => {
    const fullDir = mkdtempSync(join(tmpdir(), "dfw-alerts-full-"));
    try {
      const rules = writeRuleFile(
        await renderChart({ namespace: NAMESPACE, valuesFiles: [fullValuesFile] }),
        fullDir,
      );
      expect(rules.length).toBeGreaterThan(alerts.length);
      const result = await runPromtool(["check", "rules", "rules.yaml"], fullDir);
      expect(result.code, result.output).toBe(0);
    } finally {
      rmSync(fullDir, { recursive: true, force: true });
    }
  });

  it("has unit tests where each alert fires and where it does not, and none for an unknown alert", () => {
    expect(alerts.length).toBe(5);
    const cases = unitTests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alerts) {
      const own = cases.filter((c) => c.alertname === alert);
      expect(
        own.some((c) => c.exp_alerts.length > 0),
        `${alert}: no case where it fires`,
      ).toBe(true);
      expect(
        own.some((c) => c.exp_alerts.length === 0),
        `${alert}: no case where it stays quiet`,
      ).toBe(true);
    }
    expect(cases.map((c) => c.alertname).filter((name) => !alerts.includes(name))).toEqual([]);
  });

  it("labels the test series with the jobs the chart's ServiceMonitors give them", () => {
    // prometheus-operator: a ServiceMonitor scrapes the Services its selector matches, on the named
    // endpoint ports, with job = the Service's name (no jobLabel) and namespace = the Service's.
    const jobs = new Map<string, string>();
    for (const monitor of objects.filter((o) => o.kind === "ServiceMonitor")) {
      expect(monitor.spec.jobLabel).toBeUndefined();
      const ports = (monitor.spec.endpoints as Array<{ port: string }>).map((e) => e.port);
      const selector = monitor.spec.selector.matchLabels as Record<string, string>;
      const scraped = objects.filter(
        (o) =>
          o.kind === "Service" &&
          (monitor.spec.namespaceSelector.matchNames as string[]).includes(o.metadata.namespace ?? "") &&
          Object.entries(selector).every(([k, v]) => o.metadata.labels?.[k] === v) &&
          (o.spec.ports as Array<{ name: string }>).some((p) => ports.includes(p.name)),
      );
      expect(scraped.map((s) => s.metadata.name)).toHaveLength(1);
      const component = selector["app.kubernetes.io/component"] ?? "";
      jobs.set(component, scraped[0]?.metadata.name ?? "");
    }
    expect([...jobs.keys()].sort()).toEqual(["dispatcher", "operator"]);

    const ours = unitTests.tests
      .flatMap((t) => t.input_series.map((s) => s.series))
      .filter((series) => labelOf(series, "namespace") === NAMESPACE);
    expect(ours.length).toBeGreaterThan(20);
    for (const series of ours) {
      const component = metricOf(series).startsWith("dataforce_dispatcher_") ? "dispatcher" : "operator";
      expect(labelOf(series, "job"), series).toBe(jobs.get(component));
    }
  });

  it("promtool test rules: every alert fires when it should and only then", async () => {
    const result = await runPromtool(["test", "rules", "alerts.promtool.yaml"], dir);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain("SUCCESS");
  });
});
