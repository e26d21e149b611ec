import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { ApiError } from "./errors.ts";

/**
 * An onRequest hook accepting `Authorization: Bearer <token>` for any of `tokens` (several while
 * rotating). Digests are compared in constant time, so timing reveals nothing about a token.
 */
export function bearerAuth(tokens: readonly string[]): (request: FastifyRequest) => Promise<void> {
  const digests = tokens.map(digest);
  return async (request) => {
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) throw new ApiError("UNAUTHORIZED");
    const presented = digest(match[1]!);
    let valid = false;
    for (const known of digests) valid = timingSafeEqual(known, presented) || valid;
    if (!valid) throw new ApiError("UNAUTHORIZED");
  };
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}
