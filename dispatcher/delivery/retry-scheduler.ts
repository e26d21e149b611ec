import { PeriodicLoop } from "../../common/periodic-loop.ts";
import { promoteDue } from "../../contract/deliveries.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { RedisClient } from "../../contract/redis-client.ts";

export interface RetrySchedulerOptions {
  redis: RedisClient;
  keys: Keyspace;
  tickMs: number;
  /** Runs first on every tick (the worker evicts work its slow endpoints held too long). */
  onTick(): void;
  /** A tick failed; the next one retries. Resolves when the scheduler may go on. */
  onError(error: unknown): Promise<void>;
}

/** Deliveries promoted per script call; a full batch is followed by another at once. */
const PROMOTE_BATCH = 1000;

/**
 * Moves retries (and handed-back work) from the schedule to the work queue once they are due.
 * Every replica runs one; the move is atomic in Redis, so a due delivery is queued only once.
 */
export class RetryScheduler {
  readonly #options: RetrySchedulerOptions;
  readonly #loop: PeriodicLoop;

  constructor(options: RetrySchedulerOptions) {
    this.#options = options;
    this.#loop = new PeriodicLoop({
      intervalMs: options.tickMs,
      immediate: true,
      tick: () => {
        options.onTick();
        return this.promoteAllDue();
      },
      onError: options.onError,
    });
  }

  start(): void {
    this.#loop.start();
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  /** Promotes everything due now; returns how many deliveries it moved. */
  async promoteAllDue(): Promise<number> {
    const { redis, keys } = this.#options;
    let total = 0;
    let moved: number;
    do {
      moved = await promoteDue(redis, keys, PROMOTE_BATCH);
      total += moved;
    } while (moved === PROMOTE_BATCH && !this.#loop.stopped);
    return total;
  }
}
