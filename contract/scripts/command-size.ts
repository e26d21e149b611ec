// How big one script call may be. ioredis sends a command as one string; V8 puts a string over
// ~128 KB in its large-object space (a mapping of its own, faulted in page by page and unmapped
// at the next GC), and writing one such command to the socket cost ~10× as much per byte as a
// 32–64 KB one on this kind of machine (the dispatcher's profile had 18 % of its time in
// `writeUtf8String`, most of it in fan-out and settle calls of 150–350 KB). Batches are split
// to stay below this size instead; each part is still one atomic step.
export const MAX_COMMAND_BYTES = 64 * 1024;

/**
 * `items` in consecutive parts whose estimated sizes add up to at most `maxBytes` (an item larger
 * than that alone makes a part of its own). Order is kept; an empty list gives no part.
 */
export function splitBySize<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  maxBytes: number = MAX_COMMAND_BYTES,
): T[][] {
  const parts: T[][] = [];
  let part: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (part.length > 0 && bytes + size > maxBytes) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(item);
    bytes += size;
  }
  if (part.length > 0) parts.push(part);
  return parts;
}
