import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

// Builds the console (src/) into static files the dispatcher serves (dispatcher/api/console-routes.ts):
// index.html and the script and stylesheet it names, content-hashed, into console/build/, where
// the dispatcher finds it (run from the sources, or bundled in the image, which ships the same
// folder). Run by `npm run build` and `npm run build:console`, `make dev` and the console's tests.

const SOURCES = new URL("./src/", import.meta.url);
export const DEFAULT_OUT_DIR = new URL("./build/", import.meta.url);
/** The page weight budget: every file of the page, gzipped as the dispatcher serves it. */
export const PAGE_WEIGHT_BUDGET_BYTES = 100 * 1024;

export interface BuiltFile {
  name: string;
  bytes: number;
  gzipBytes: number;
}

/**
 * Builds into a directory of its own, then puts it in `outDir`'s place: a dispatcher reading
 * `outDir` meanwhile sees the old build or none (and looks again), never half of one.
 */
export async function buildConsole(outDir: URL = DEFAULT_OUT_DIR): Promise<BuiltFile[]> {
  const finalDir = fileURLToPath(outDir).replace(/\/$/, "");
  const staging = new URL(`file://${finalDir}.${process.pid}.${Date.now()}/`);
  await mkdir(staging, { recursive: true });
  try {
    await buildInto(staging);
    await rm(outDir, { recursive: true, force: true });
    await rename(staging, finalDir);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return measure(outDir);
}

async function buildInto(outDir: URL): Promise<void> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("main.tsx", SOURCES))],
    outdir: fileURLToPath(outDir),
    entryNames: "[name]-[hash]",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome100", "firefox100", "safari15.4"],
    minify: true,
    jsx: "automatic",
    jsxImportSource: "preact",
    tsconfig: fileURLToPath(new URL("./tsconfig.json", import.meta.url)),
    define: { "process.env.NODE_ENV": '"production"' },
    legalComments: "eof",
    metafile: true,
    logLevel: "warning",
  });
  const outputs = Object.entries(result.metafile.outputs);
  const script = outputs.find(([, output]) => output.entryPoint !== undefined && output.cssBundle);
  if (script === undefined) throw new Error("esbuild produced no script with a stylesheet");
  const name = (path: string) => path.slice(path.lastIndexOf("/") + 1);
  const template = await readFile(new URL("index.html", SOURCES), "utf8");
  const index = template
    .replace("%SCRIPT%", name(script[0]))
    .replace("%STYLES%", name(script[1].cssBundle ?? ""));
  await writeFile(new URL("index.html", outDir), index);
}

/** Every file's size, raw and gzipped (level 9, as the dispatcher serves it). */
export async function measure(dir: URL): Promise<BuiltFile[]> {
  const files: BuiltFile[] = [];
  for (const entry of (await readdir(dir)).sort()) {
    const body = await readFile(new URL(entry, dir));
    files.push({ name: entry, bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length });
  }
  return files;
}

if (import.meta.main) {
  const target = process.argv[2];
  const outDir =
    target === undefined
      ? DEFAULT_OUT_DIR
      : new URL(`${target.replace(/\/?$/, "/")}`, `file://${process.cwd()}/`);
  const files = await buildConsole(outDir);
  for (const file of files)
    console.log(`${file.name.padEnd(28)} ${file.bytes} B, ${file.gzipBytes} B gzipped`);
  const total = files.reduce((sum, file) => sum + file.gzipBytes, 0);
  console.log(
    `console → ${fileURLToPath(outDir)}: ${total} B gzipped (budget ${PAGE_WEIGHT_BUDGET_BYTES} B)`,
  );
}
