import type { TokenBucket } from "./rate-limiter.ts";

/**
 * The operator's write budget (one token bucket) shared fairly between namespaces: waiters queue
 * per namespace, and each token goes to the next namespace in turn (round-robin), so one busy
 * namespace — a retry storm, a burst of deliveries — cannot starve the others' mirror, retry and
 * retention writes. Within a namespace, first come, first served.
 */
export class FairLimiter {
  readonly #bucket: TokenBucket;
  /** Waiting namespaces in turn order (a Map keeps insertion order: served ones go to the back). */
  readonly #queues = new Map<string, Array<Waiter>>();
  #serving = false;

  constructor(bucket: TokenBucket) {
    this.#bucket = bucket;
  }

  /** Namespaces with writes waiting. */
  get waitingNamespaces(): number {
    return this.#queues.size;
  }

  /** Waits for this namespace's turn and a token. */
  take(namespace: string, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      if (signal) {
        waiter.onAbort = () => {
          this.#remove(namespace, waiter);
          reject(signal.reason);
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
        waiter.signal = signal;
      }
      const queue = this.#queues.get(namespace);
      if (queue) queue.push(waiter);
      else this.#queues.set(namespace, [waiter]);
      void this.#serve();
    });
  }

  async #serve(): Promise<void> {
    if (this.#serving) return;
    this.#serving = true;
    try {
      while (this.#queues.size > 0) {
        await this.#bucket.take();
        const next = this.#queues.entries().next();
        if (next.done) break; // every waiter gave up meanwhile: the token is spent anyway
        const [namespace, queue] = next.value;
        const waiter = queue.shift()!;
        this.#queues.delete(namespace);
        if (queue.length > 0) this.#queues.set(namespace, queue); // to the back of the turn order
        if (waiter.onAbort) waiter.signal?.removeEventListener("abort", waiter.onAbort);
        waiter.resolve();
      }
    } finally {
      this.#serving = false;
    }
  }

  #remove(namespace: string, waiter: Waiter): void {
    const queue = this.#queues.get(namespace);
    if (!queue) return;
    const index = queue.indexOf(waiter);
    if (index >= 0) queue.splice(index, 1);
    if (queue.length === 0) this.#queues.delete(namespace);
  }
}

interface Waiter {
  resolve(): void;
  reject(reason: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}
