// How big one script call may be. A fan-out batch of 256 events, each to many webhooks, would
// otherwise be one Lua call that holds Redis — shared by every namespace — for as long as it takes
// to make thousands of deliveries; bounded by bytes, each call stays short. Also, ioredis sends a
// command as one string, and V8 puts a string over ~128 KB in its large-object space: writing a
// 256 KB command to a socket cost ~10x as much per byte as a 32-64 KB one in a micro-benchmark
// here (the end-to-end bench did not move measurably either way). Each part is one atomic step.
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
