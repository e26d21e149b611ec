// Prometheus's side of the chart, for the alert and dashboard tests: promtool (Debian's
// `prometheus` package; PROMTOOL_BIN overrides), rule files from the rendered PrometheusRule, and
// the job labels Prometheus gives each process's series when it scrapes through the chart's
// ServiceMonitors.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import type { Process } from "../support/exported-metrics.ts";
import type { K8sObject } from "./helm.ts";

const run = promisify(execFile);
const promtool = process.env.PROMTOOL_BIN ?? "promtool";

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}

/** Runs promtool in `cwd`; never throws on a non-zero exit (look at `code`). */
export async function runPromtool(args: string[], cwd: string): Promise<{ code: number; output: string }> {
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

/** Writes `dir/rules.yaml`, a Prometheus rule file (`groups:`) of the rendered PrometheusRule. */
export function writeRuleFile(objects: K8sObject[], dir: string): Rule[] {
  const rules = objects.filter((o) => o.kind === "PrometheusRule");
  if (rules.length !== 1) throw new Error(`expected one PrometheusRule, rendered ${rules.length}`);
  const spec = rules[0]?.spec as { groups: Array<{ rules: Rule[] }> };
  writeFileSync(join(dir, "rules.yaml"), stringify(spec));
  return spec.groups.flatMap((g) => g.rules);
}

/**
 * The job label of each process's series, as prometheus-operator derives it: a ServiceMonitor
 * scrapes the Services its selector matches, on the named endpoint ports, with job = the
 * Service's name (the ServiceMonitors set no jobLabel) and namespace = the Service's.
 */
export function scrapedJobs(objects: K8sObject[]): Map<Process, string> {
  const jobs = new Map<Process, string>();
  for (const monitor of objects.filter((o) => o.kind === "ServiceMonitor")) {
    if (monitor.spec.jobLabel !== undefined) throw new Error(`${monitor.metadata.name} sets a jobLabel`);
    const ports = (monitor.spec.endpoints as Array<{ port: string }>).map((e) => e.port);
    const selector = monitor.spec.selector.matchLabels as Record<string, string>;
    const scraped = objects.filter(
      (o) =>
        o.kind === "Service" &&
        (monitor.spec.namespaceSelector.matchNames as string[]).includes(o.metadata.namespace ?? "") &&
        Object.entries(selector).every(([k, v]) => o.metadata.labels?.[k] === v) &&
        (o.spec.ports as Array<{ name: string }>).some((p) => ports.includes(p.name)),
    );
    if (scraped.length !== 1)
      throw new Error(`${monitor.metadata.name} scrapes ${scraped.length} Services, not one`);
    jobs.set(selector["app.kubernetes.io/component"] as Process, scraped[0]?.metadata.name ?? "");
  }
  if ([...jobs.keys()].sort().join() !== "dispatcher,operator")
    throw new Error(
      `ServiceMonitors for ${[...jobs.keys()].join(", ")}; expected the dispatcher and the operator`,
    );
  return jobs;
}
