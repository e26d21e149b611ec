import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { aclSetUserCommand } from "../../contract/redis-acl.ts";
import { ENVIRONMENT as DISPATCHER_ENV } from "../../dispatcher/config.ts";
import { ENVIRONMENT as OPERATOR_ENV } from "../../operator/config.ts";
import { exportedMetrics } from "../support/exported-metrics.ts";

// The README documents names that code defines; these tests keep the two in step.
// (Its kubectl and curl examples run in test/env/dev-stack.e2e.test.ts.)

const repo = join(import.meta.dirname, "..", "..");
const readme = await readFile(join(repo, "README.md"), "utf8");

describe("README", () => {
  it("documents every environment variable of the dispatcher and the operator", () => {
    for (const variable of [...Object.values(DISPATCHER_ENV), ...Object.values(OPERATOR_ENV)])
      expect(readme, variable).toContain(`\`${variable}\``);
  });

  it("gives the ACL SETUSER lines of contract/redis-acl.ts for the default key tag", () => {
    for (const role of ["operator", "dispatcher"] as const)
      expect(readme).toContain(aclSetUserCommand(role, `dataforce-${role}`, "dataforce"));
  });

  it("names no environment variable the code does not read", () => {
    const known = new Set<string>([...Object.values(DISPATCHER_ENV), ...Object.values(OPERATOR_ENV)]);
    const named = readme.match(/\b(?:DISPATCHER|OPERATOR)_[A-Z_]+\b/g) ?? [];
    expect(named.filter((name) => !known.has(name))).toEqual([]);
  });

  it("names only metrics that the processes export, with their labels", async () => {
    const exported = await exportedMetrics();
    const table = readme.slice(readme.indexOf("### Metrics"), readme.indexOf("### Alerts"));
    const rows = table.split("\n").filter((line) => line.startsWith("| `"));
    const named = rows.flatMap((row) =>
      [...(row.split(" | ")[0] ?? "").matchAll(/`([a-z_]+)(?:\{([^`]*)\})?`/g)].map((m) => ({
        name: m[1] ?? "",
        labels: m[2] ? m[2].split(",") : [],
      })),
    );
    expect(named.length).toBeGreaterThan(15);
    for (const { name, labels } of named) {
      const metric = (name.startsWith("dataforce_dispatcher_") ? exported.dispatcher : exported.operator).get(
        name,
      );
      expect(metric, `README names ${name}`).toBeDefined();
      for (const label of labels) expect(metric?.labels, `README names ${name}{${label}}`).toContain(label);
    }
  });
});
