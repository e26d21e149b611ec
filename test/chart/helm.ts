/**
 * The chart under test and a `helm` CLI to render it. helm comes from test/env/build-helm.sh
 * (built once from its Go module and cached; HELM_BIN overrides), which `make test` runs first.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);

export const repoRoot = join(import.meta.dirname, "..", "..");
export const chartDir = join(repoRoot, "charts", "dataforce-webhooks");
/** Every optional feature on (chart-testing's `ci/*-values.yaml` convention). */
export const fullValuesFile = join(chartDir, "ci", "full-values.yaml");

/** A rendered Kubernetes object (loosely typed: tests look at whatever they need). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are arbitrary YAML
  [key: string]: any;
}

let helmPath: Promise<string> | undefined;

/** Path of the helm binary; builds it on first use when it is not cached (minutes). */
export function helmBin(): Promise<string> {
  helmPath ??= run("bash", [join(repoRoot, "test", "env", "build-helm.sh")], {
    maxBuffer: 16 * 1024 * 1024,
  }).then(({ stdout }) => stdout.trim());
  return helmPath;
}

export interface HelmResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs helm; never throws on a non-zero exit (look at `code`). Killed after `timeoutMs` (120 s). */
export async function helm(args: readonly string[], timeoutMs = 120_000): Promise<HelmResult> {
  const bin = await helmBin();
  try {
    const { stdout, stderr } = await run(bin, args, { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; code?: number | string };
    return {
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? String(error),
      code: typeof e.code === "number" ? e.code : -1,
    };
  }
}

export interface RenderOptions {
  namespace: string;
  releaseName?: string;
  valuesFiles?: readonly string[];
  set?: Readonly<Record<string, string>>;
}

/** `helm template` argument list for the chart. */
export function templateArgs(options: RenderOptions): string[] {
  const args = ["template", options.releaseName ?? "dfw", chartDir, "--namespace", options.namespace];
  for (const file of options.valuesFiles ?? []) args.push("--values", file);
  for (const [key, value] of Object.entries(options.set ?? {})) args.push("--set", `${key}=${value}`);
  return args;
}

/** `helm template` → the rendered objects (templates only; CRDs are in the chart's crds/). */
export async function renderChart(options: RenderOptions): Promise<K8sObject[]> {
  return (await renderChartText(options)).objects;
}

/** `helm template` → helm's exact output and the objects parsed from it. */
export async function renderChartText(
  options: RenderOptions,
): Promise<{ text: string; objects: K8sObject[] }> {
  const result = await helm(templateArgs(options));
  if (result.code !== 0) throw new Error(`helm template failed (${result.code}):\n${result.stderr}`);
  return { text: result.stdout, objects: parseManifests(result.stdout) };
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw doc.errors[0];
      return doc.toJS() as K8sObject | null;
    })
    .filter((object): object is K8sObject => object !== null);
}

/** The pod template of a workload, or undefined for other kinds. */
export function podSpecOf(object: K8sObject): K8sObject["spec"] | undefined {
  switch (object.kind) {
    case "Pod":
      return object.spec;
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return object.spec?.template?.spec;
    case "CronJob":
      return object.spec?.jobTemplate?.spec?.template?.spec;
    default:
      return undefined;
  }
}
