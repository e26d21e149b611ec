// Every error the HTTP API returns, with a stable code, its HTTP status and a message. Clients
// match on `code`; messages may improve. Body: `{ "error": { "code", "message", "details"? } }`.

export const API_ERRORS = {
  UNAUTHORIZED: { statusCode: 401, message: "a valid bearer token is required" },
  NAMESPACE_FORBIDDEN: { statusCode: 403, message: "this token may not publish into that namespace" },
  INVALID_EVENT: { statusCode: 400, message: "the event is invalid" },
  INVALID_REQUEST: { statusCode: 400, message: "the request is invalid" },
  INVALID_JSON: { statusCode: 400, message: "the body is not valid JSON" },
  PAYLOAD_TOO_LARGE: { statusCode: 413, message: "the body is too large" },
  UNSUPPORTED_MEDIA_TYPE: { statusCode: 415, message: "the body must be application/json" },
  DELIVERY_NOT_FOUND: { statusCode: 404, message: "no such delivery (it may have expired)" },
  EVENT_NOT_FOUND: { statusCode: 404, message: "no such event (it may have expired)" },
  DELIVERY_NOT_FAILED: { statusCode: 409, message: "only a FAILED delivery can be retried" },
  NOT_FOUND: { statusCode: 404, message: "no such route" },
  CONSOLE_NOT_BUILT: {
    statusCode: 404,
    message: "the console is not built: run `npm run build:console` (`npm run build` builds it too)",
  },
  UNAVAILABLE: { statusCode: 503, message: "the dispatcher cannot serve this now; retry later" },
  INTERNAL: { statusCode: 500, message: "internal error" },
} as const satisfies Record<string, { statusCode: number; message: string }>;

export type ApiErrorCode = keyof typeof API_ERRORS;

export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; details?: unknown };
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly code: ApiErrorCode;
  readonly statusCode: number;
  readonly details: unknown;

  constructor(code: ApiErrorCode, message?: string, details?: unknown) {
    super(message ?? API_ERRORS[code].message);
    this.code = code;
    this.statusCode = API_ERRORS[code].statusCode;
    this.details = details;
  }

  toBody(): ApiErrorBody {
    const body: ApiErrorBody = { error: { code: this.code, message: this.message } };
    if (this.details !== undefined) body.error.details = this.details;
    return body;
  }
}

/** Fastify's own errors (body parsing, limits) mapped onto ours. */
export function fromFastifyError(error: { code?: string; statusCode?: number; message: string }): ApiError {
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError("PAYLOAD_TOO_LARGE");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError("UNSUPPORTED_MEDIA_TYPE");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ApiError("INVALID_JSON", "the body is empty");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new ApiError("INVALID_JSON");
  }
  if (error instanceof SyntaxError || error.statusCode === 400)
    return new ApiError("INVALID_JSON", error.message);
  return new ApiError("INTERNAL");
}

/** A zod error as details: where and what, one entry per problem. */
export function issuesOf(error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> }): Array<{
  path: string;
  message: string;
}> {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
}
