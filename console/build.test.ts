import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuiltFile, buildConsole, PAGE_WEIGHT_BUDGET_BYTES } from "./build.ts";

let dir: URL;
let files: BuiltFile[];

beforeAll(async () => {
  dir = pathToFileURL(`${await mkdtemp(join(tmpdir(), "dfw-console-"))}/`);
  files = await buildConsole(dir);
}, 30_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the console build", () => {
  it("is one page, one script and one stylesheet, content-hashed", async () => {
    const names = files.map((file) => file.name);
    expect(names).toHaveLength(3);
    expect(names).toContain("index.html");
    expect(names.filter((name) => /^main-[A-Z0-9]{8}\.js$/.test(name))).toHaveLength(1);
    expect(names.filter((name) => /^main-[A-Z0-9]{8}\.css$/.test(name))).toHaveLength(1);
    const index = await readFile(new URL("index.html", dir), "utf8");
    for (const file of files.filter((f) => f.name !== "index.html"))
      expect(index).toContain(`./${file.name}`);
  });

  it(`weighs less than ${PAGE_WEIGHT_BUDGET_BYTES / 1024} KB gzipped, everything the page loads`, () => {
    const total = files.reduce((sum, file) => sum + file.gzipBytes, 0);
    console.log(
      `console page weight: ${total} B gzipped (${files.map((f) => `${f.name} ${f.gzipBytes}`).join(", ")})`,
    );
    expect(total).toBeLessThan(PAGE_WEIGHT_BUDGET_BYTES);
  });
});
