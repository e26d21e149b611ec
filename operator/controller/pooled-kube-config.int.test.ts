import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loopbackServerPki } from "../../test/env/pki.ts";
import { getJson } from "./kube.ts";
import { PooledKubeConfig } from "./pooled-kube-config.ts";

// A real HTTPS server on 127.0.0.1 stands in for the API server: it counts TLS handshakes and
// records the credentials each request carried.

let dir: string;
let server: Server;
let serverUrl: string;
let caFile: string;
let handshakes = 0;
const authorizations: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dataforce-pooled-kc-"));
  const pki = await loopbackServerPki(dir, "apiserver");
  caFile = pki.caFile;
  server = createServer(
    { cert: await readFile(pki.certFile), key: await readFile(pki.keyFile) },
    (req, res) => {
      authorizations.push(String(req.headers.authorization));
      req.resume().on("end", () => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ kind: "NamespaceList", apiVersion: "v1", metadata: {}, items: [] }));
      });
    },
  );
  server.on("secureConnection", () => handshakes++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  serverUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

function load<T extends KubeConfig>(kc: T, token: string): T {
  kc.loadFromOptions({
    clusters: [{ name: "test", server: serverUrl, caFile }],
    users: [{ name: "operator", token }],
    contexts: [{ name: "test", cluster: "test", user: "operator" }],
    currentContext: "test",
  });
  return kc;
}

/** 10 paged-list GETs (the informers' path) and 10 generated-client calls (the writes' path). */
async function requests(kc: KubeConfig): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  for (let i = 0; i < 10; i++) {
    await getJson(kc, "/api/v1/namespaces");
    await core.listNamespace();
  }
}

describe("PooledKubeConfig", () => {
  it("sends every request over one kept-alive TLS connection, with the current credentials each time", async () => {
    handshakes = 0;
    authorizations.length = 0;
    const kc = load(new PooledKubeConfig(), "token-1");
    await requests(kc);
    expect(authorizations).toEqual(Array(20).fill("Bearer token-1"));
    // a connection may still be on its way back to the pool when the next request starts
    expect(handshakes).toBeLessThanOrEqual(2);
    const opened = handshakes;

    // a rotated token is used at once, on the same connections
    load(kc, "token-2");
    await requests(kc);
    expect(authorizations.slice(20)).toEqual(Array(20).fill("Bearer token-2"));
    expect(handshakes).toBe(opened);
    await kc.closePool();
  });

  it("is needed: client-node's own KubeConfig opens a TLS connection per request", async () => {
    handshakes = 0;
    await requests(load(new KubeConfig(), "token-1"));
    expect(handshakes).toBe(20);
  });
});
