import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { parse } from "yaml";
import { deliveryId } from "../../contract/delivery-id.ts";
import type { DeliveryRecord } from "../../contract/records.ts";
import { API_VERSION } from "../../operator/api/v1alpha1/index.ts";
import { desiredStatus, newWebhookEvent } from "../../operator/mirror/webhook-event.ts";

// Many WebhookEvents with large payloads, written straight to the API server as the mirror
// writes them (create, then a status write): what the operator's caches must hold without the
// payloads. Used by the operator memory bench and its e2e bound.

export interface AdminClient {
  readonly agent: Agent;
  /** A request as cluster admin; throws unless 2xx. Returns the body. */
  must(method: string, path: string, body: unknown, contentType?: string): Promise<string>;
  /** A GET as cluster admin (`accept`: e.g. a metadata-only list); throws unless 2xx. Returns the body. */
  get(path: string, accept?: string): Promise<string>;
}

/**
 * The admin kubeconfig's client certificate over a keep-alive agent (kubectl per object would be
 * far slower): at most `maxSockets` requests at once; `userAgent` tells its requests apart in
 * the API server's audit log.
 */
export function adminClient(
  kubeconfigPath: string,
  options: { maxSockets: number; userAgent?: string },
): AdminClient {
  const config = parse(readFileSync(kubeconfigPath, "utf8")) as {
    clusters: Array<{ cluster: { server: string; "certificate-authority-data": string } }>;
    users: Array<{ user: { "client-certificate-data": string; "client-key-data": string } }>;
  };
  const server = config.clusters[0]!.cluster.server;
  const b64 = (value: string) => Buffer.from(value, "base64");
  const agent = new Agent({
    keepAlive: true,
    maxSockets: options.maxSockets,
    ca: b64(config.clusters[0]!.cluster["certificate-authority-data"]),
    cert: b64(config.users[0]!.user["client-certificate-data"]),
    key: b64(config.users[0]!.user["client-key-data"]),
  });
  const send = (method: string, path: string, headers: Record<string, string>, data?: string) =>
    new Promise<string>((resolve, reject) => {
      const req = request(
        `${server}${path}`,
        {
          method,
          agent,
          headers: {
            ...headers,
            ...(options.userAgent ? { "user-agent": options.userAgent } : {}),
            ...(data === undefined ? {} : { "content-length": String(Buffer.byteLength(data)) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(text);
            else reject(new Error(`${method} ${path}: ${status} ${text.slice(0, 500)}`));
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(data);
    });
  return {
    agent,
    must: (method, path, body, contentType = "application/json") =>
      send(method, path, { "content-type": contentType }, JSON.stringify(body)),
    get: (path, accept = "application/json") => send("GET", path, { accept }),
  };
}

/** A SENT delivery whose payload is `payloadBytes` of JSON (random text: nothing shares or compresses it). */
export function largeDeliveryRecord(
  namespace: string,
  i: number,
  webhook: string,
  payloadBytes: number,
): DeliveryRecord {
  const eventId = `evt_${i}`;
  const at = new Date(Date.now() - 60_000).toISOString();
  const head = JSON.stringify({ id: eventId, type: "job.created", data: { jobId: `job_${i}`, notes: "" } });
  const fill = payloadBytes - head.length;
  const notes = randomBytes(Math.ceil((fill * 3) / 4) + 3)
    .toString("base64")
    .slice(0, Math.max(0, fill));
  const payload = head.replace('"notes":""', `"notes":"${notes}"`);
  return {
    id: deliveryId(namespace, eventId, webhook),
    eventId,
    eventType: "job.created",
    namespace,
    webhook,
    webhookUid: "",
    url: "https://receiver.example/hook",
    payload,
    phase: "SENT",
    attempts: [{ number: 1, startedAt: at, durationMs: 42, statusCode: 200 }],
    maxAttempts: 3,
    cycle: 1,
    cycleAttempts: 1,
    occurredAt: at,
    ingestedAt: at,
    createdAt: at,
    updatedAt: at,
    version: 2,
  };
}

/**
 * `count` SENT WebhookEvents with `payloadBytes` of payload, spread round-robin over
 * `namespaces` (each with `webhook`, whose uid is in `uids`), `concurrency` at a time.
 */
export async function createLargeWebhookEvents(
  api: AdminClient,
  options: {
    namespaces: readonly string[];
    webhook: string;
    uids: ReadonlyMap<string, string>;
    count: number;
    payloadBytes: number;
    concurrency: number;
    onProgress?: (done: number) => void;
  },
): Promise<void> {
  const { namespaces, webhook, uids, count, payloadBytes } = options;
  const path = `/apis/${API_VERSION}/namespaces`;
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const ns = namespaces[i % namespaces.length]!;
      const record = largeDeliveryRecord(ns, i, webhook, payloadBytes);
      // a run that starts over (a retried test) finds its events there already
      await api
        .must("POST", `${path}/${ns}/webhookevents`, newWebhookEvent(record, uids.get(ns)!))
        .catch((error: unknown) => {
          if (!(error instanceof Error && / 409 /.test(error.message))) throw error;
        });
      await api.must(
        "PATCH",
        `${path}/${ns}/webhookevents/${record.id}/status`,
        { status: desiredStatus(record, undefined) },
        "application/merge-patch+json",
      );
      options.onProgress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
}
