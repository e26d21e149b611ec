// The dependency direction of the folders, as the linter enforces it (biome.json overrides):
//   operator ─┐
//             ├──► contract (the Redis contract)      test/ may import anything;
//   dispatcher┘    common   (settings, log redaction)  tests may import test/support.
//   console/src (the browser) imports none of them but contract/'s types, and zod/mini.
// Neither process imports the other. Each case lints a probe file laid out like the repo
// with the repo's own biome.json, so a weakened rule fails here and not only in review.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const repo = join(import.meta.dirname, "..", "..");
const biome = join(repo, "node_modules", ".bin", "biome");
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "dfw-imports-"));
  const config = JSON.parse(await readFile(join(repo, "biome.json"), "utf8")) as Record<string, unknown>;
  delete config.$schema;
  await writeFile(join(work, "biome.json"), JSON.stringify(config));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Lints one probe file importing `specifier`; the restricted-import diagnostics, if any. */
async function lintImport(file: string, specifier: string): Promise<string[]> {
  const path = join(work, file);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `import { value } from "${specifier}";\n\nexport const probe = value;\n`);
  try {
    const { stdout } = await run(biome, ["lint", "--reporter=json", file], { cwd: work });
    return restricted(stdout);
  } catch (error) {
    return restricted((error as { stdout?: string }).stdout ?? "");
  } finally {
    await rm(path);
  }
}

function restricted(report: string): string[] {
  const parsed = JSON.parse(report.slice(report.indexOf("{"))) as {
    diagnostics?: Array<{ category?: string; description?: string }>;
  };
  return (parsed.diagnostics ?? [])
    .filter((d) => d.category === "lint/style/noRestrictedImports")
    .map((d) => d.description ?? "");
}

describe("import direction (lint)", () => {
  it.each([
    ["operator/reconcilers/probe.ts", "../../dispatcher/config.ts"],
    ["operator/probe.test.ts", "../dispatcher/metrics.ts"],
    ["operator/probe.ts", "../test/support/fixtures.ts"],
    ["dispatcher/delivery/probe.ts", "../../operator/config.ts"],
    ["dispatcher/probe.test.ts", "../operator/caches.ts"],
    ["dispatcher/probe.ts", "../test/support/receiver.ts"],
    ["contract/probe.ts", "../dispatcher/routing-table.ts"],
    ["contract/scripts/probe.ts", "../../operator/config.ts"],
    ["contract/probe.ts", "../common/logging/serialize-error.ts"],
    ["common/probe.ts", "../contract/keys.ts"],
    ["console/src/probe.ts", "../../dispatcher/api/errors.ts"],
    ["console/src/probe.tsx", "zod"],
  ])("refuses %s importing %s", async (file, specifier) => {
    expect(await lintImport(file, specifier)).not.toEqual([]);
  });

  it.each([
    ["operator/mirror/probe.ts", "../../contract/keys.ts"],
    ["operator/probe.ts", "../common/settings/environment.ts"],
    ["dispatcher/probe.ts", "../contract/deliveries.ts"],
    ["operator/api/v1alpha1/probe.ts", "../../../contract/event-types.ts"],
    ["operator/probe.int.test.ts", "../test/support/fixtures.ts"],
    ["contract/probe.int.test.ts", "../test/support/fixtures.ts"],
    ["test/e2e/probe.ts", "../../dispatcher/config.ts"],
    ["console/src/probe.ts", "zod/mini"],
  ])("allows %s importing %s", async (file, specifier) => {
    expect(await lintImport(file, specifier)).toEqual([]);
  });
});
