import { join, relative } from "node:path";
import { build, type Metafile } from "esbuild";

// The processes as the image runs them: each entry bundled with every package it imports into one
// ES module. Loading client-node's ~1,000 generated modules one by one cost the operator ~47 MiB
// of RSS and 18 MB of V8 heap more than its bundle (measured by loading the module graph alone:
// 149 → 102 MiB RSS, 36 → 18 MB heap); the image then needs no node_modules at all.
//
// Not minified: minifying saved no memory worth having (102 vs 104 MiB) and would leave stack
// traces and Node's error frames unreadable; bundle line numbers and function names are kept. The
// source map beside each bundle is not loaded by default: mapping a stack trace parses all of it
// (~50 MB of heap, measured); `NODE_OPTIONS=--enable-source-maps` turns it on.

const repo = join(import.meta.dirname, "..");

/**
 * The environment the image gives both processes (the Dockerfile's ENV lines; the image test
 * checks they match), which the benchmarks give them too. Two malloc arenas instead of glibc's
 * 8 per core: Node's threads each grew their own and kept the freed memory; the operator's
 * settled RSS with 10,000 Webhooks went from 171 to 153 MiB (npm run bench:operator).
 */
export const RUNTIME_ENV = { NODE_ENV: "production", MALLOC_ARENA_MAX: "2" } as const;

/** What the image runs: `dist/<name>.js` from `<name>.ts`. */
export const PROCESS_ENTRIES = ["dispatcher/main", "operator/main"] as const;

export interface BundleOptions {
  /** where `<name>.js` (and its `.map`) are written */
  outDir: string;
  /** repo-relative entry names without `.ts` */
  entries?: readonly string[];
}

/** Bundles the entries; returns the modules each bundle still imports (Node's built-ins only). */
export async function bundleProcesses(options: BundleOptions): Promise<Map<string, string[]>> {
  const entries = options.entries ?? PROCESS_ENTRIES;
  const result = await build({
    entryPoints: Object.fromEntries(entries.map((name) => [name, join(repo, `${name}.ts`)])),
    outdir: options.outDir,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    // CommonJS packages inside an ES module bundle call require() for Node's built-ins
    banner: {
      js: "import { createRequire as __bundleRequire } from 'node:module';\nconst require = __bundleRequire(import.meta.url);",
    },
    sourcemap: "external",
    sourcesContent: false,
    legalComments: "external",
    metafile: true,
    logLevel: "warning",
  });
  return externalImports(result.metafile, options.outDir);
}

/** Per bundle (repo-relative output path), the modules left to load at run time. */
function externalImports(metafile: Metafile, outDir: string): Map<string, string[]> {
  const imports = new Map<string, string[]>();
  for (const [output, meta] of Object.entries(metafile.outputs)) {
    if (!output.endsWith(".js")) continue;
    imports.set(
      relative(outDir, join(process.cwd(), output)),
      meta.imports.filter((i) => i.external).map((i) => i.path),
    );
  }
  return imports;
}

if (import.meta.main) {
  const outDir = join(repo, "dist");
  for (const [bundle, external] of await bundleProcesses({ outDir })) {
    console.log(`dist/${bundle}: imports ${external.join(", ") || "nothing"} at run time`);
  }
}
