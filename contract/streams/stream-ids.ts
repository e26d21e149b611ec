// Stream entry ids (`<ms>-<seq>`), compared and read without BigInt.

/** The smaller of two stream ids. */
export function minId(a: string | undefined, b: string): string {
  if (a === undefined) return b;
  return compareIds(a, b) <= 0 ? a : b;
}

export function compareIds(a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split("-").map(Number);
  const [bMs = 0, bSeq = 0] = b.split("-").map(Number);
  return aMs - bMs || aSeq - bSeq;
}

/** The epoch ms encoded in a stream entry id (the time Redis appended it). */
export function entryTime(id: string): number {
  return Number(id.slice(0, id.indexOf("-")));
}
