// The chart's alerts (templates/prometheusrule.yaml) on Prometheus's own rule engine: promtool
// (Debian's `prometheus` package; PROMTOOL_BIN overrides) checks the rendered rules and runs the
// unit tests of alerts.promtool.yaml — input series, and for every alert the times it must and
// must not fire. The series are labelled as the chart's ServiceMonitors label them (checked here
// against the rendered ServiceMonitors and Services), so an alert that selects the wrong job fails.
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { exportedMetrics, queryProblems } from "../support/exported-metrics.ts";
import { promqlUses } from "../support/promql.ts";
import { fullValuesFile, type K8sObject, renderChart } from "./helm.ts";
import { type Rule, runPromtool, scrapedJobs, writeRuleFile } from "./prometheus.ts";

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

const labelOf = (series: string, label: string) => series.match(new RegExp(`[{,]${label}="([^"]*)"`))?.[1];
const metricOf = (series: string) => series.match(/^[a-zA-Z_:][\w:]*/)?.[0] ?? "";

describe("the PrometheusRule on promtool", () => {
  let dir: string;
  let objects: K8sObject[];
  let rules: Rule[];
  let alerts: string[];

  beforeAll(async () => {
    objects = await renderChart({
      namespace: NAMESPACE,
      releaseName: RELEASE,
      set: { "metrics.prometheusRule.enabled": "true", "metrics.serviceMonitor.enabled": "true" },
    });
    dir = mkdtempSync(join(tmpdir(), "dfw-alerts-"));
    rules = writeRuleFile(objects, dir);
    alerts = rules.flatMap((r) => (r.alert ? [r.alert] : []));
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
    expect(alerts.length).toBe(7);
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
    const jobs = scrapedJobs(objects);
    const ours = unitTests.tests
      .flatMap((t) => t.input_series.map((s) => s.series))
      .filter((series) => labelOf(series, "namespace") === NAMESPACE);
    expect(ours.length).toBeGreaterThan(20);
    for (const series of ours) {
      const process = metricOf(series).startsWith("dataforce_dispatcher_") ? "dispatcher" : "operator";
      expect(labelOf(series, "job"), series).toBe(jobs.get(process));
    }
  });

  // An alert on a metric nobody exports, or on a label it does not have, never fires.
  it("alerts only on metrics and labels that the process of the selected job exports", async () => {
    const metrics = await exportedMetrics();
    const jobs = scrapedJobs(objects);
    const processOf = new Map([...jobs].map(([process, job]) => [job, process]));
    const problems = rules.flatMap((rule) =>
      queryProblems(promqlUses(rule.expr), metrics, (job) => {
        const process = job?.op === "=" ? processOf.get(job.value) : undefined;
        return process ? [process] : [];
      }).map((problem) => `${rule.alert}: ${problem}`),
    );
    expect(problems).toEqual([]);
  });

  it("promtool test rules: every alert fires when it should and only then", async () => {
    const result = await runPromtool(["test", "rules", "alerts.promtool.yaml"], dir);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain("SUCCESS");
    // promtool evaluates every case's hours of samples: seconds on a busy 2-core machine
  }, 30_000);
});
