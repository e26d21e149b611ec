import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

// A webhook receiver on 127.0.0.1 for tests: records every request and answers as told.

export interface ReceivedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** epoch ms */
  receivedAt: number;
}

export type Behaviour =
  | { kind: "respond"; status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  | { kind: "hang" }
  | { kind: "reset" };

export type Responder = (request: ReceivedRequest, count: number) => Behaviour;

export interface Receiver {
  readonly origin: string;
  url(path: string): string;
  /** Requests received so far, optionally for one path. */
  requests(path?: string): ReceivedRequest[];
  /** Sets how a path (or, with "*", every path without its own) answers. Default: 200 "ok". */
  on(path: string, responder: Responder | Behaviour): void;
  waitForRequests(count: number, path?: string, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

/** `host`: the address to listen on; loopback unless a test's pods must reach it (a node's bridge). */
export async function startReceiver(host = "127.0.0.1"): Promise<Receiver> {
  const received: ReceivedRequest[] = [];
  const responders = new Map<string, Responder>();
  const counts = new Map<string, number>();
  const hanging = new Set<ServerResponse>();

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0]!;
      const request: ReceivedRequest = {
        path,
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        receivedAt: Date.now(),
      };
      received.push(request);
      const count = (counts.get(path) ?? 0) + 1;
      counts.set(path, count);
      const responder = responders.get(path) ?? responders.get("*");
      const behaviour: Behaviour = responder ? responder(request, count) : { kind: "respond", status: 200 };
      switch (behaviour.kind) {
        case "hang":
          hanging.add(res);
          res.on("close", () => hanging.delete(res));
          return;
        case "reset":
          req.socket.destroy();
          return;
        case "respond": {
          const send = () => {
            res.writeHead(behaviour.status, behaviour.headers);
            res.end(behaviour.body ?? "ok");
          };
          if (behaviour.delayMs) setTimeout(send, behaviour.delayMs);
          else send();
        }
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://${host}:${port}`;

  return {
    origin,
    url: (path) => `${origin}${path}`,
    requests: (path) => (path === undefined ? [...received] : received.filter((r) => r.path === path)),
    on(path, responder) {
      responders.set(path, typeof responder === "function" ? responder : () => responder);
    },
    async waitForRequests(count, path, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const matching = path === undefined ? received : received.filter((r) => r.path === path);
        if (matching.length >= count) return [...matching];
        if (Date.now() > deadline) {
          throw new Error(`expected ${count} requests${path ? ` to ${path}` : ""}, got ${matching.length}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
