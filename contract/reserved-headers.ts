// Headers a webhook's configuration may not set: the delivery contract owns them, or they are
// connection-level (hop-by-hop) headers the HTTP client refuses, which would fail every attempt.
// One list for both sides: the operator's CRD validation refuses them, the dispatcher drops them.

/** Reserved header names (lower case). */
export const RESERVED_HEADERS = [
  "host",
  "content-type",
  "content-length",
  "user-agent",
  "connection",
  "transfer-encoding",
  "keep-alive",
  "upgrade",
  "expect",
  "te",
  "trailer",
] as const;

/** Reserved header name prefixes (lower case): the Standard Webhooks headers and proxy headers. */
export const RESERVED_HEADER_PREFIXES = ["webhook-", "proxy-"] as const;

const RESERVED = new Set<string>(RESERVED_HEADERS);

/** Whether a webhook's configuration may not set this header (any case). */
export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return RESERVED.has(lower) || RESERVED_HEADER_PREFIXES.some((prefix) => lower.startsWith(prefix));
}
