import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { COARSE_TIMEOUT_FROM_MS, DeliveryClient, RESPONSE_PREFIX_BYTES } from "./http-client.ts";
import { destinationPolicy } from "./ssrf-guard.ts";

// The delivery client against real receivers on 127.0.0.1: what an attempt reports when the
// receiver answers, hangs, or trickles its body.

const servers: Server[] = [];
const client = new DeliveryClient({ connectionsPerOrigin: 4, policy: destinationPolicy(["127.0.0.1"]) });

afterEach(() => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

async function receiver(handler: RequestListener): Promise<URL> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
}

const post = (url: URL, timeoutMs: number) =>
  client.send({
    url,
    body: '{"type":"job.created"}',
    headers: { "content-type": "application/json" },
    timeoutMs,
  });

describe("DeliveryClient", () => {
  it("reports a 2xx with the receiver's short body", async () => {
    const url = await receiver((req, res) => req.resume().on("end", () => res.end("thanks")));
    const result = await post(url, 1_000);
    expect(result).toMatchObject({
      ok: true,
      statusCode: 200,
      responseBodyPrefix: "thanks",
      abortRequested: false,
    });
  });

  it("keeps only the first bytes of a long body, of known length or chunked", async () => {
    const long = "x".repeat(100_000);
    for (const chunked of [false, true]) {
      const url = await receiver((req, res) =>
        req.resume().on("end", () => {
          if (!chunked) res.setHeader("content-length", long.length);
          res.end(long);
        }),
      );
      const result = await post(url, 1_000);
      expect(result.statusCode).toBe(200);
      expect(result.responseBodyPrefix).toBe("x".repeat(RESPONSE_PREFIX_BYTES));
    }
  });

  it("fails a receiver that does not answer within the timeout as a timeout", async () => {
    const url = await receiver(() => {}); // reads nothing, answers nothing
    const result = await post(url, 150);
    expect(result).toMatchObject({ ok: false, errorCode: "timeout", error: "no response within 150 ms" });
    expect(result.durationMs).toBeGreaterThanOrEqual(140);
    expect(result.durationMs).toBeLessThan(400); // a precise timer below COARSE_TIMEOUT_FROM_MS
  });

  it("times a long timeout out with undici's coarse timers: up to about a second late, never early", async () => {
    const url = await receiver(() => {});
    const result = await post(url, COARSE_TIMEOUT_FROM_MS);
    expect(result).toMatchObject({ ok: false, errorCode: "timeout" });
    expect(result.durationMs).toBeGreaterThanOrEqual(COARSE_TIMEOUT_FROM_MS - 10);
    expect(result.durationMs).toBeLessThan(COARSE_TIMEOUT_FROM_MS + 1_500);
  });

  it("does not let a receiver that trickles its body hold the attempt much past the timeout", async () => {
    const url = await receiver((req, res) =>
      req.resume().on("end", () => {
        res.writeHead(200); // chunked, no length
        const timer = setInterval(() => res.write("."), 100); // under the body timeout each time
        res.on("close", () => clearInterval(timer));
      }),
    );
    const started = performance.now();
    const result = await post(url, 300);
    const took = performance.now() - started;
    expect(result.statusCode).toBe(200); // the answer came in time; only its body is cut short
    expect(result.responseBodyPrefix).toMatch(/^\.+$/);
    expect(took).toBeLessThan(300 + 300 + 500); // the deadline, one more chunk, slack
  });
});
