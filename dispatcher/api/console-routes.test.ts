import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { gunzipSync } from "node:zlib";
import Fastify from "fastify";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { consoleRoutes } from "./console-routes.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "dfw-console-routes-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function serve() {
  const app = Fastify();
  await app.register(consoleRoutes, { assetsDir: pathToFileURL(`${dir}/`) });
  return app;
}

async function writeBuild() {
  await writeFile(join(dir, "main-ABCDEFGH.js"), "console.log('console');".repeat(50));
  await writeFile(join(dir, "index.html"), '<script src="./main-ABCDEFGH.js"></script>');
}

describe("console routes", () => {
  it("redirects /console to /console/, relative to where the dispatcher is served", async () => {
    const response = await (await serve()).inject("/console");
    expect(response.statusCode).toBe(308);
    expect(response.headers.location).toBe("console/");
  });

  it("serves the page revalidated, its assets cached for good, gzipped when accepted, under a strict CSP", async () => {
    await writeBuild();
    const app = await serve();
    const index = await app.inject("/console/");
    expect(index.statusCode).toBe(200);
    expect(index.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(index.headers["cache-control"]).toBe("no-cache");
    expect(index.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(index.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(index.body).toContain("main-ABCDEFGH.js");

    const script = await app.inject({
      url: "/console/main-ABCDEFGH.js",
      headers: { "accept-encoding": "gzip, br" },
    });
    expect(script.headers["content-encoding"]).toBe("gzip");
    expect(script.headers["cache-control"]).toContain("immutable");
    expect(script.rawPayload.length).toBeLessThan(200);
    expect(gunzipSync(script.rawPayload).toString()).toContain("console.log");
    expect((await app.inject("/console/main-ABCDEFGH.js")).headers["content-encoding"]).toBeUndefined();
    expect((await app.inject("/console/nope.js")).statusCode).toBe(404);
  });

  it("says the console is not built until it is, then serves it without a restart", async () => {
    const app = await serve();
    const missing = await app.inject("/console/");
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: "CONSOLE_NOT_BUILT" });
    await writeBuild();
    expect((await app.inject("/console/")).statusCode).toBe(200);
  });
});
