// Writes crds/ from the zod schemas: `npm run crds`.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderCrdFiles } from "./crd-files.ts";

const crdDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "crds");
await mkdir(crdDir, { recursive: true });
for (const [name, content] of renderCrdFiles()) {
  await writeFile(join(crdDir, name), content);
  console.log(`wrote crds/${name}`);
}
