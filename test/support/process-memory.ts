import { readFileSync } from "node:fs";

// A process's memory as the kernel and a container runtime see it (Linux /proc), and the V8 heap
// limits Node would take inside a container: shared by the operator memory bench and the e2e
// test that holds the operator to its stated bound.

/** The V8 heap flags Node would arrive at in a container of `containerMiB` (64-bit, no pointer compression). */
export function heapFlags(containerMiB: number): string[] {
  const oldSpace = Math.floor(containerMiB / 2);
  // ≤ 256 MiB of old space is V8's "low memory": semi-space = old / 256, at least 1 MiB;
  // above, old / 128 (a power of two, at most 64 MiB).
  const semi = oldSpace <= 256 ? 1 : 2 ** Math.ceil(Math.log2(Math.min(64, Math.max(1, oldSpace / 128))));
  return [`--max-old-space-size=${oldSpace}`, `--max-semi-space-size=${semi}`];
}

/** VmRSS, VmHWM and RssAnon of a process, MiB; undefined once it is gone. */
export function procStatus(pid: number): { rss: number; hwm: number; anon: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024, anon: kib("RssAnon") / 1024 };
}

/** VmRSS every 250 ms; VmHWM is the kernel's own peak. */
export class RssSampler {
  private readonly pid: number;
  private readonly timer: NodeJS.Timeout;
  private samples: number[] = [];
  private latest = 0;
  private peak = 0;
  private anonPeak = 0;
  private windowStart = Number.POSITIVE_INFINITY;

  constructor(pid: number) {
    this.pid = pid;
    this.timer = setInterval(() => this.sample(), 250);
    this.sample();
  }

  private sample(): void {
    const status = procStatus(this.pid);
    // gone, or a zombie (no Vm* lines) until reaped
    if (!status || Number.isNaN(status.rss)) return;
    this.latest = status.rss;
    this.peak = Math.max(this.peak, status.hwm);
    this.anonPeak = Math.max(this.anonPeak, status.anon);
    if (Date.now() >= this.windowStart) this.samples.push(status.rss);
  }

  startWindow(): void {
    this.samples = [];
    this.windowStart = Date.now();
  }

  window(): number[] {
    this.sample();
    return this.samples;
  }

  last(): number {
    return this.latest;
  }

  hwm(): number {
    this.sample();
    return this.peak;
  }

  /** The largest RssAnon seen (sampled, so it may miss a short peak). */
  anonMax(): number {
    return this.anonPeak;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
