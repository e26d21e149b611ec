import { createServer, type Server } from "node:http";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

export interface ReceivedDelivery {
  id: string;
  verified: boolean;
  body: unknown;
  receivedAt: Date;
}

export interface DemoReceiver {
  readonly url: string;
  readonly deliveries: ReceivedDelivery[];
  stop(): Promise<void>;
}

/**
 * A webhook receiver as a customer would write one: it verifies the Standard Webhooks
 * signature with the public `standardwebhooks` library and answers 204 (401 when the
 * signature does not verify). Listens on 127.0.0.1 only.
 */
export async function startDemoReceiver(options: {
  secret: string;
  port?: number;
  onDelivery?: (delivery: ReceivedDelivery) => void;
}): Promise<DemoReceiver> {
  const verifier = new Webhook(options.secret);
  const deliveries: ReceivedDelivery[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const headers = Object.fromEntries(
        Object.entries(req.headers).map(([name, value]) => [
          name,
          Array.isArray(value) ? value.join(",") : (value ?? ""),
        ]),
      );
      let verified = false;
      try {
        verifier.verify(raw, headers);
        verified = true;
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error;
      }
      const delivery = {
        id: headers["webhook-id"] ?? "",
        verified,
        body: safeJson(raw),
        receivedAt: new Date(),
      };
      deliveries.push(delivery);
      options.onDelivery?.(delivery);
      res.writeHead(verified ? 204 : 401).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("demo receiver has no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}/webhooks`,
    deliveries,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
