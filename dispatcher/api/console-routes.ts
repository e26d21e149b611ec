import { readdir, readFile } from "node:fs/promises";
import { extname } from "node:path";
import { gzipSync } from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError } from "./errors.ts";

// The event log console (console/): static files, served from memory. The page reads the event
// log API with the token its user enters, so serving it needs no authentication and exposes
// nothing; it is built by `npm run build` (and `npm run build:console`, `make dev`, its tests).

export interface ConsoleRoutesOptions {
  /** The built console: index.html and the content-hashed assets it names. */
  assetsDir: URL;
}

/**
 * Where the build puts the console, found from this module: `console/build/` two levels up, both
 * from these sources and from the image's bundle (`/app/dist/dispatcher/main.js` →
 * `/app/console/build/`).
 */
export const DEFAULT_CONSOLE_DIR = new URL("../../console/build/", import.meta.url);

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** Its own scripts and styles only, requests to this origin only, never framed. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

interface Asset {
  contentType: string;
  body: Buffer;
  gzipped: Buffer;
}

/**
 * `GET /console` → `/console/` (relative, so a path prefix in front of the dispatcher is kept)
 * and the files below it. index.html is revalidated on every load; the other files carry a
 * content hash in their names and are cached for good.
 */
export async function consoleRoutes(app: FastifyInstance, options: ConsoleRoutesOptions): Promise<void> {
  let assets = await loadAssets(options.assetsDir);

  async function serve(request: FastifyRequest, reply: FastifyReply, name: string) {
    // built after the dispatcher started (make dev, a test): pick it up
    assets ??= await loadAssets(options.assetsDir);
    if (assets === undefined) throw new ApiError("CONSOLE_NOT_BUILT");
    const asset = assets.get(name);
    if (asset === undefined) throw new ApiError("NOT_FOUND");
    const gzip = /\bgzip\b/.test(request.headers["accept-encoding"] ?? "");
    reply
      .header("content-type", asset.contentType)
      .header("cache-control", name === "index.html" ? "no-cache" : "public, max-age=31536000, immutable")
      .header("vary", "accept-encoding")
      .header("content-security-policy", CONTENT_SECURITY_POLICY)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer");
    if (gzip) reply.header("content-encoding", "gzip");
    return reply.send(gzip ? asset.gzipped : asset.body);
  }

  app.get("/console", (_request, reply) => reply.redirect("console/", 308));
  app.get("/console/", (request, reply) => serve(request, reply, "index.html"));
  app.get<{ Params: { file: string } }>("/console/:file", (request, reply) =>
    serve(request, reply, request.params.file),
  );
}

/**
 * Every file of the built console, gzipped once; undefined when it is not built (or was being
 * replaced by a new build while read: the next request looks again).
 */
async function loadAssets(dir: URL): Promise<Map<string, Asset> | undefined> {
  try {
    const names = await readdir(dir);
    if (!names.includes("index.html")) return undefined;
    const assets = new Map<string, Asset>();
    for (const name of names) {
      const contentType = CONTENT_TYPES[extname(name)];
      if (contentType === undefined) continue;
      const body = await readFile(new URL(name, dir));
      assets.set(name, { contentType, body, gzipped: gzipSync(body, { level: 9 }) });
    }
    return assets;
  } catch {
    return undefined;
  }
}
