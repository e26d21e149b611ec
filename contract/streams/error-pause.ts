import { setTimeout as sleep } from "node:timers/promises";

/** How long a loop waits after a failed step: `initialMs`, doubling per consecutive failure up to `maxMs`. */
export interface PausePolicy {
  initialMs: number;
  maxMs: number;
}

/** A constant half-second pause: the dispatcher's loops retry Redis at once-ish, but never spin. */
export const STEADY_PAUSE: PausePolicy = { initialMs: 500, maxMs: 500 };

/**
 * The pause between retries of a failing loop step. Consecutive failures back off exponentially;
 * one success resets it. Waits end early when `signal` aborts (the loop is stopping).
 */
export class ErrorPause {
  readonly #policy: PausePolicy;
  #failures = 0;

  constructor(policy: PausePolicy = STEADY_PAUSE) {
    if (policy.initialMs <= 0 || policy.maxMs < policy.initialMs) throw new Error("invalid pause policy");
    this.#policy = policy;
  }

  /** Consecutive failures since the last success. */
  get failures(): number {
    return this.#failures;
  }

  /** The wait after the next failure. */
  nextDelayMs(): number {
    const { initialMs, maxMs } = this.#policy;
    return Math.min(maxMs, initialMs * 2 ** Math.min(this.#failures, 30));
  }

  succeeded(): void {
    this.#failures = 0;
  }

  async failed(signal?: AbortSignal): Promise<void> {
    const delay = this.nextDelayMs();
    this.#failures++;
    await sleep(delay, undefined, { signal }).catch(() => {});
  }
}
