import { setTimeout as sleep } from "node:timers/promises";

// A token bucket, client-go's flowcontrol.NewTokenBucketRateLimiter(qps, burst):
// `burst` tokens fit in the bucket, refilled at `qps` per second. Every API write of
// the mirror takes one token first, so over any window of T seconds at most
// burst + qps·T writes are made, however large the backlog.

export interface RateLimiterOptions {
  /** Sustained writes per second. */
  qps: number;
  /** Writes allowed at once after a quiet period. */
  burst: number;
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
}

export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private last: number;
  /** Waiters in arrival order, so no caller starves. */
  private queue: Promise<void> = Promise.resolve();

  constructor(options: RateLimiterOptions) {
    if (!(options.qps > 0)) throw new Error(`qps must be positive, got ${options.qps}`);
    if (!(options.burst >= 1)) throw new Error(`burst must be at least 1, got ${options.burst}`);
    this.qps = options.qps;
    this.burst = options.burst;
    this.now = options.now ?? (() => performance.now());
    this.tokens = options.burst;
    this.last = this.now();
  }

  /** Takes a token if one is there now; never waits. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is available (0 when one is there now). */
  delayUntilToken(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.qps) * 1000;
  }

  /** Waits for a token and takes it. Callers are served first come, first served. */
  take(signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(async () => {
      for (;;) {
        signal?.throwIfAborted();
        if (this.tryTake()) return;
        await sleep(Math.max(1, Math.ceil(this.delayUntilToken())), undefined, { signal });
      }
    });
    // A rejected (aborted) waiter must not block the ones behind it.
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private refill(): void {
    const now = this.now();
    const elapsedMs = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs / 1000) * this.qps);
  }
}
