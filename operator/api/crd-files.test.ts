import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderCrdFiles } from "./crd-files.ts";

const crdDir = join(import.meta.dirname, "..", "..", "crds");

describe("crds/", () => {
  it("is what `npm run crds` generates from the zod schemas (run it after changing operator/api)", async () => {
    for (const [name, expected] of renderCrdFiles()) {
      const actual = await readFile(join(crdDir, name), "utf8").catch(() => "<missing>");
      expect(actual, `crds/${name} is stale: run npm run crds`).toBe(expected);
    }
  });

  it("holds no generated file that the schemas no longer produce", async () => {
    const generated = new Set(renderCrdFiles().keys());
    const onDisk = (await readdir(crdDir)).filter((name) => name.endsWith(".yaml") || name.endsWith(".md"));
    expect(onDisk.sort()).toEqual([...generated].sort());
  });
});
