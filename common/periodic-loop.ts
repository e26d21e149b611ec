import { setTimeout as sleep } from "node:timers/promises";

export interface PeriodicLoopOptions {
  intervalMs: number;
  /** Run the first tick at once (else after one interval). */
  immediate: boolean;
  tick(): Promise<unknown>;
  /** A tick failed; the next tick retries. May wait (a pause) before the loop goes on. */
  onError(error: unknown): void | Promise<void>;
}

/**
 * Runs `tick` every `intervalMs` (measured from the end of the previous tick) until stopped.
 * `stop()` ends the wait at once and resolves when the tick in progress, if any, is done.
 */
export class PeriodicLoop {
  readonly #options: PeriodicLoopOptions;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: PeriodicLoopOptions) {
    this.#options = options;
  }

  get stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { intervalMs, immediate, tick, onError } = this.#options;
    const wait = () => sleep(intervalMs, undefined, { signal: this.#stop.signal }).catch(() => {});
    if (!immediate) await wait();
    while (!this.stopped) {
      try {
        await tick();
      } catch (error) {
        await onError(error);
      }
      await wait();
    }
  }
}
