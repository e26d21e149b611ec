import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

// The benchmark's webhook receiver, in a process of its own: answers every POST 200 "ok" as
// cheaply as node:http allows, and prints its port on stdout.

let received = 0;
const server = createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    received++;
    res.writeHead(200, { "content-length": "2" });
    res.end("ok");
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.on("SIGTERM", () => {
  process.stderr.write(`received ${received}\n`);
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
