import type * as z from "zod/mini";
import {
  ApiErrorBodySchema,
  type BulkRetryResult,
  BulkRetryResultSchema,
  type DeliveryDetail,
  DeliveryDetailSchema,
  type DeliveryPage,
  DeliveryPageSchema,
  type RetryResult,
  RetryResultSchema,
} from "./api-schemas.ts";
import { type Filter, filterParams } from "./filter.ts";

/** An answer of the API other than success: its status, stable code and message. */
export class ApiRequestError extends Error {
  override readonly name = "ApiRequestError";
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The event log API, with one token. Addresses are relative to the page (`/console/` →
 * `/v1/…`), so the console works behind a path prefix too.
 */
export class LogApi {
  readonly #token: string;

  constructor(token: string) {
    this.#token = token;
  }

  list(filter: Filter, page: { limit: number; cursor?: string | undefined }): Promise<DeliveryPage> {
    const params = filterParams(filter);
    params.set("limit", String(page.limit));
    if (page.cursor !== undefined) params.set("cursor", page.cursor);
    return this.#request("GET", `v1/deliveries?${params}`, DeliveryPageSchema);
  }

  get(id: string): Promise<DeliveryDetail> {
    return this.#request("GET", `v1/deliveries/${encodeURIComponent(id)}`, DeliveryDetailSchema);
  }

  /** `token`: the retry request's identity; the same token never retries twice. */
  retry(id: string, token: string): Promise<RetryResult> {
    return this.#request("POST", `v1/deliveries/${encodeURIComponent(id)}/retry`, RetryResultSchema, {
      token,
    });
  }

  /** Every FAILED delivery matching the filter (its phase is ignored). */
  retryAll(filter: Filter, token: string): Promise<BulkRetryResult> {
    const { namespace, webhook, eventType } = filter;
    return this.#request("POST", "v1/deliveries/retry", BulkRetryResultSchema, {
      ...(namespace ? { namespace } : {}),
      ...(webhook ? { webhook } : {}),
      ...(eventType ? { eventType } : {}),
      token,
    });
  }

  async #request<T extends z.ZodMiniType>(
    method: "GET" | "POST",
    path: string,
    schema: T,
    body?: unknown,
  ): Promise<z.output<T>> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(new URL(`../${path}`, location.href), {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      cache: "no-store",
    });
    const json: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const error = ApiErrorBodySchema.safeParse(json);
      throw error.success
        ? new ApiRequestError(response.status, error.data.error.code, error.data.error.message)
        : new ApiRequestError(response.status, "HTTP_ERROR", `the dispatcher answered ${response.status}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new ApiRequestError(
        response.status,
        "UNEXPECTED_ANSWER",
        "the dispatcher's answer was not understood",
      );
    }
    return parsed.data;
  }
}

/** A fresh retry request token (crypto.randomUUID needs a secure context; this does not). */
export function newRetryToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `console-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}
