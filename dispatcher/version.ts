import { readFileSync } from "node:fs";

/** The product version from the repository's package.json (found from `dispatcher/` or `dist/`). */
export const PRODUCT_VERSION: string = readVersion();

export const USER_AGENT = `Dataforce-Webhooks/${PRODUCT_VERSION}`;

function readVersion(): string {
  for (const candidate of ["../package.json", "../../package.json"]) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(candidate, import.meta.url), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === "dataforce-webhooks" && manifest.version) return manifest.version;
    } catch {
      // try the next location
    }
  }
  return "0.0.0-unknown";
}
