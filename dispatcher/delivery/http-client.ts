import { isIP } from "node:net";
import { Agent, buildConnector, type Dispatcher } from "undici";
import type { AttemptErrorCode } from "../../contract/records.ts";
import { parseRetryAfter } from "./backoff.ts";
import { DESTINATION_NOT_ALLOWED, type DestinationPolicy, DestinationRefusedError } from "./ssrf-guard.ts";

/** How much of a response body the event log keeps. */
export const RESPONSE_PREFIX_BYTES = 1024;

/**
 * Attempt timeouts from this long on are left to undici's own headers and body timers, which tick
 * about once a second (so they fire up to ~1 s late) but cost nothing per request; shorter ones
 * get a precise timer and an AbortController of their own, which cost 11 % of the client's CPU per
 * POST (measured). The default timeout, 15 s, is on the cheap side.
 */
export const COARSE_TIMEOUT_FROM_MS = 5_000;

export interface DeliveryRequest {
  url: URL;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

export interface AttemptResult {
  /** epoch ms */
  startedAt: number;
  durationMs: number;
  /** 2xx within the timeout */
  ok: boolean;
  statusCode?: number;
  errorCode?: AttemptErrorCode;
  error?: string;
  responseBodyPrefix?: string;
  /** From `Retry-After` on 429/503. */
  retryAfterMs?: number;
  /** The receiver asked to stop retrying (`webhook-delivery: abort-message`). */
  abortRequested: boolean;
}

export interface DeliveryClientOptions {
  /** Keep-alive connections per origin (16 beat 64 in measurements: more throughput, lower p50). */
  connectionsPerOrigin: number;
  policy: DestinationPolicy;
}

/**
 * POSTs webhooks with undici's pooled keep-alive client (an order of magnitude faster than
 * `fetch`). Redirects are not followed; every outcome, error or not, becomes an AttemptResult.
 */
export class DeliveryClient {
  readonly #agent: Agent;

  constructor(options: DeliveryClientOptions) {
    const connect = buildConnector({ lookup: options.policy.lookup, timeout: 10_000 });
    this.#agent = new Agent({
      connections: options.connectionsPerOrigin,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect(connectOptions, callback) {
        // A literal IP never goes through `lookup`: check it here.
        const host = connectOptions.hostname.replace(/^\[|\]$/g, "");
        if (isIP(host) !== 0 && !options.policy.allows(host)) {
          callback(new DestinationRefusedError(`${host}: ${DESTINATION_NOT_ALLOWED}`), null);
          return;
        }
        connect(connectOptions, callback);
      },
    });
  }

  async send(request: DeliveryRequest): Promise<AttemptResult> {
    const startedAt = Date.now();
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 100) / 100;
    const deadline = started + request.timeoutMs;
    const precise = request.timeoutMs < COARSE_TIMEOUT_FROM_MS ? new AbortController() : undefined;
    const timer = precise && setTimeout(() => precise.abort(), request.timeoutMs);
    try {
      const response = await this.#agent.request({
        origin: request.url.origin,
        path: `${request.url.pathname}${request.url.search}`,
        method: "POST",
        headers: request.headers,
        body: request.body,
        headersTimeout: request.timeoutMs,
        bodyTimeout: request.timeoutMs,
        ...(precise ? { signal: precise.signal } : {}),
      });
      const { statusCode } = response;
      const durationMs = elapsed();
      const responseBodyPrefix = await readPrefix(response, deadline);
      const result: AttemptResult = {
        startedAt,
        durationMs,
        ok: statusCode >= 200 && statusCode < 300,
        statusCode,
        abortRequested: header(response.headers, "webhook-delivery")?.toLowerCase() === "abort-message",
      };
      if (responseBodyPrefix !== "") result.responseBodyPrefix = responseBodyPrefix;
      if (!result.ok) {
        const location = header(response.headers, "location");
        if (statusCode >= 300 && statusCode < 400) {
          result.errorCode = "redirect";
          result.error = `redirect to ${location ?? "(no location)"} not followed (HTTP ${statusCode})`;
        } else {
          result.errorCode = "http_status";
          result.error = `HTTP ${statusCode}`;
        }
        if (statusCode === 429 || statusCode === 503) {
          const retryAfterMs = parseRetryAfter(header(response.headers, "retry-after"));
          if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
        }
      }
      return result;
    } catch (error) {
      const [errorCode, message] =
        precise?.signal.aborted || isResponseTimeout(error)
          ? (["timeout", `no response within ${request.timeoutMs} ms`] as const)
          : classify(error);
      return {
        startedAt,
        durationMs: elapsed(),
        ok: false,
        errorCode,
        error: message,
        abortRequested: false,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  /** Drops every connection at once (in-flight requests fail). */
  async destroy(): Promise<void> {
    await this.#agent.destroy();
  }
}

/**
 * The first bytes of a response body; a longer body is abandoned (its connection is closed, not
 * drained). A small body of known length is read in one go (the common case, and the cheapest);
 * otherwise chunk by chunk, giving up at `deadline`: a receiver that trickles its body cannot hold
 * the connection past the attempt's timeout by more than one stalled chunk (bodyTimeout).
 */
async function readPrefix(response: Dispatcher.ResponseData, deadline: number): Promise<string> {
  const { body } = response;
  const length = Number(header(response.headers, "content-length"));
  try {
    if (length <= RESPONSE_PREFIX_BYTES) return await body.text();
  } catch {
    return ""; // a body that fails midway still leaves the status code to judge by
  }
  const chunks: Buffer[] = [];
  let read = 0;
  try {
    // leaving the loop early destroys the body, and with it the connection
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      read += chunk.length;
      if (read >= RESPONSE_PREFIX_BYTES || performance.now() > deadline) break;
    }
  } catch {
    // as above
  }
  return Buffer.concat(chunks, read).subarray(0, RESPONSE_PREFIX_BYTES).toString("utf8");
}

/** undici's headersTimeout / bodyTimeout: the receiver did not answer within the attempt's timeout. */
function isResponseTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT";
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function errorCodeOf(error: unknown): string {
  if (typeof error !== "object" || error === null) return "";
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  if (typeof code === "string" && code !== "UND_ERR_SOCKET") return code;
  if (cause !== undefined) {
    const inner = errorCodeOf(cause);
    if (inner !== "") return inner;
  }
  return typeof code === "string" ? code : "";
}

/** Maps a transport error to a stable code and a message free of secrets. */
export function classify(error: unknown): [AttemptErrorCode, string] {
  const code = errorCodeOf(error);
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof DestinationRefusedError || code === "DESTINATION_REFUSED") {
    return ["destination_refused", message];
  }
  switch (code) {
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
    case "ETIMEDOUT":
      return ["timeout", message];
    case "ECONNREFUSED":
      return ["connection_refused", `connection refused (${message})`];
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_SOCKET":
      return ["connection_reset", `connection reset (${message})`];
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return ["dns_failure", `DNS lookup failed (${message})`];
  }
  if (code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || code.includes("CERT")) {
    return ["tls_error", message];
  }
  return ["network_error", code ? `${code}: ${message}` : message];
}
