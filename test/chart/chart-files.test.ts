// Fast checks of the chart's files against their sources (no helm, no API server).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { chartDir, repoRoot } from "./helm.ts";
import { operatorRbacRules } from "./operator-rbac.ts";

const read = (...path: string[]) => readFileSync(join(...path), "utf8");
const topCrds = join(repoRoot, "crds");
const POLICY = "webhooks.dataforce.io_destination-policy.yaml";

describe("the chart's copies of crds/ (refreshed by `make crds`)", () => {
  // Copies rather than symlinks: `helm package`, Argo CD's repo server and Windows checkouts
  // treat plain files alike; this test keeps them identical to the generated sources.
  const topCrdFiles = readdirSync(topCrds)
    .filter((name) => name.endsWith(".yaml") && name !== POLICY)
    .sort();

  it("crds/ holds exactly the CustomResourceDefinitions of the top-level crds/", () => {
    expect(topCrdFiles.length).toBe(4);
    expect(readdirSync(join(chartDir, "crds")).sort()).toEqual(topCrdFiles);
    for (const name of topCrdFiles) {
      expect(
        read(chartDir, "crds", name),
        `charts/dataforce-webhooks/crds/${name} is stale: run make crds`,
      ).toBe(read(topCrds, name));
      expect(parse(read(topCrds, name)).kind).toBe("CustomResourceDefinition");
    }
  });

  it("files/destination-policy.yaml is the generated admission policy (rendered from templates, not crds/)", () => {
    expect(
      read(chartDir, "files", "destination-policy.yaml"),
      "charts/dataforce-webhooks/files/destination-policy.yaml is stale: run make crds",
    ).toBe(read(topCrds, POLICY));
  });
});

describe("versions and entrypoints agree", () => {
  const pkg = JSON.parse(read(repoRoot, "package.json")) as {
    version: string;
    devDependencies: Record<string, string>;
  };
  const chart = parse(read(chartDir, "Chart.yaml")) as { appVersion: string; version: string };
  const dockerfile = read(repoRoot, "Dockerfile");

  it("Chart.yaml appVersion is the package version", () => {
    expect(chart.appVersion).toBe(pkg.version);
  });

  it("the Dockerfile's Node is the node devDependency the project runs on", () => {
    expect(dockerfile).toMatch(
      new RegExp(`^ARG NODE_VERSION=${pkg.devDependencies.node?.replace(/\./g, "\\.")}$`, "m"),
    );
  });

  it("the chart starts the entrypoints the Dockerfile names", () => {
    const named = new Set(dockerfile.match(/dist\/[\w/-]+\.js/g));
    expect([...named].sort()).toEqual(["dist/dispatcher/main.js", "dist/operator/main.js"]);
    for (const [file, entry] of [
      ["operator-deployment.yaml", "dist/operator/main.js"],
      ["dispatcher-deployment.yaml", "dist/dispatcher/main.js"],
    ] as const) {
      expect(read(chartDir, "templates", file)).toContain(`args: ["${entry}"]`);
    }
  });
});

describe("the operator's RBAC rules file", () => {
  it("grants what the operator needs and no wildcard", () => {
    const rules = operatorRbacRules();
    const all = [...rules.clusterRole, ...rules.leaderElectionRole];
    for (const rule of all) {
      expect(rule.verbs).not.toContain("*");
      expect(rule.resources).not.toContain("*");
      expect(rule.apiGroups).not.toContain("*");
    }
    const grants = (group: string, resource: string) =>
      rules.clusterRole
        .filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource))
        .flatMap((r) => r.verbs)
        .sort();
    const group = "webhooks.dataforce.io";
    expect(grants(group, "webhooks")).toEqual(["get", "list", "watch"]);
    expect(grants(group, "webhookintegrations")).toEqual(["get", "list", "watch"]);
    expect(grants(group, "webhookevents")).toEqual(["create", "delete", "get", "list", "patch", "watch"]);
    for (const kind of ["webhooks", "webhookintegrations", "webhookevents"]) {
      expect(grants(group, `${kind}/status`)).toEqual(["patch"]);
    }
    // patch: labels a signing secret generated before the consent label existed (and only that)
    expect(grants("", "secrets")).toEqual(["create", "get", "list", "patch", "watch"]);
    expect(grants("events.k8s.io", "events")).toEqual(["create", "patch"]);
    expect(rules.leaderElectionRole).toEqual([
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
    ]);
  });
});

describe("the chart README", () => {
  const readme = read(chartDir, "README.md");

  /** Dotted keys of the values schema; `resources` and free-form maps count as one key. */
  function schemaKeys(node: SchemaNode, prefix = ""): string[] {
    if (node.type === "object" && node.properties && !prefix.endsWith("resources")) {
      return Object.entries(node.properties).flatMap(([key, child]) =>
        schemaKeys(child, prefix ? `${prefix}.${key}` : key),
      );
    }
    return [prefix];
  }
  interface SchemaNode {
    type?: string | string[];
    properties?: Record<string, SchemaNode>;
  }

  it("documents every value of values.schema.json", () => {
    const schema = JSON.parse(read(chartDir, "values.schema.json")) as SchemaNode;
    const keys = schemaKeys(schema).filter((key) => key !== "global");
    expect(keys.length).toBeGreaterThan(80);
    const undocumented = keys.filter((key) => !readme.includes(`| \`${key}\` |`));
    expect(undocumented, "values missing from the README's table").toEqual([]);
  });

  it("shows the Argo CD health check exactly as the chart ships it", () => {
    const lua = read(chartDir, "files", "argocd-health.lua");
    expect(readme).toContain(`\`\`\`lua\n${lua}\`\`\``);
  });
});
