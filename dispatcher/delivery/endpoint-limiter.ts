// Isolation between endpoints. Each endpoint (URL origin) gets its own queue and at most
// `perEndpoint` requests in flight; all endpoints share `maxInFlight`, taken round-robin so a busy
// endpoint cannot starve a quiet one. A queue only holds what its endpoint can work off within
// `maxQueueWaitMs` at its observed latency: work beyond that is refused (the caller hands it back
// to the shared schedule for later), so a slow or dead endpoint holds a bounded share of the
// dispatcher and never delays deliveries to healthy ones.

export interface LimiterOptions {
  maxInFlight: number;
  perEndpoint: number;
  /** Hard cap of one endpoint's queue. */
  maxQueuedPerEndpoint: number;
  /** Refuse work that would wait longer than this for its endpoint. */
  maxQueueWaitMs: number;
}

export type Admission = { admitted: true } | { admitted: false; retryAfterMs: number };

interface Endpoint {
  readonly key: string;
  readonly queue: Array<unknown>;
  /** start times (performance.now) of the requests in flight */
  readonly active: Set<number>;
  /** exponentially weighted mean latency, ms */
  latencyMs: number;
  lastUsed: number;
  ready: boolean;
}

const LATENCY_WEIGHT = 0.2;
const IDLE_ENDPOINT_TTL_MS = 300_000;

export class EndpointLimiter<T> {
  readonly #options: LimiterOptions;
  readonly #run: (job: T) => Promise<void>;
  readonly #now: () => number;
  readonly #endpoints = new Map<string, Endpoint>();
  /** endpoints with queued work and a free slot, in round-robin order */
  readonly #ready: Endpoint[] = [];
  #inFlight = 0;
  #queued = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(
    options: LimiterOptions,
    run: (job: T) => Promise<void>,
    now: () => number = performance.now.bind(performance),
  ) {
    this.#options = options;
    this.#run = run;
    this.#now = now;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get queued(): number {
    return this.#queued;
  }

  /** Starts the job now, queues it, or refuses it with a hint of when its endpoint may have room. */
  submit(endpointKey: string, job: T): Admission {
    const endpoint = this.#endpoint(endpointKey);
    const wait = this.#expectedWaitMs(endpoint, endpoint.queue.length + 1);
    if (endpoint.queue.length >= this.#options.maxQueuedPerEndpoint || wait > this.#options.maxQueueWaitMs) {
      return { admitted: false, retryAfterMs: Math.max(wait, 1) };
    }
    endpoint.queue.push(job);
    this.#queued++;
    this.#markReady(endpoint);
    this.#pump();
    return { admitted: true };
  }

  /**
   * Takes back queued work that would now wait too long (its endpoint turned slow after the work
   * was admitted), newest first. Call periodically.
   */
  evictOverdue(): Array<{ job: T; retryAfterMs: number }> {
    const evicted: Array<{ job: T; retryAfterMs: number }> = [];
    const now = this.#now();
    for (const [key, endpoint] of this.#endpoints) {
      while (endpoint.queue.length > 0) {
        const wait = this.#expectedWaitMs(endpoint, endpoint.queue.length);
        if (wait <= this.#options.maxQueueWaitMs) break;
        evicted.push({ job: endpoint.queue.pop() as T, retryAfterMs: wait });
        this.#queued--;
      }
      if (
        endpoint.queue.length === 0 &&
        endpoint.active.size === 0 &&
        now - endpoint.lastUsed > IDLE_ENDPOINT_TTL_MS
      ) {
        this.#endpoints.delete(key);
      }
    }
    return evicted;
  }

  /** Removes and returns every queued (not started) job, e.g. to hand it back at shutdown. */
  drainQueued(): T[] {
    const jobs: T[] = [];
    for (const endpoint of this.#endpoints.values()) {
      for (const job of endpoint.queue.splice(0)) jobs.push(job as T);
    }
    this.#ready.length = 0;
    for (const endpoint of this.#endpoints.values()) endpoint.ready = false;
    this.#queued = 0;
    return jobs;
  }

  /** Resolves once nothing is in flight. */
  whenIdle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #endpoint(key: string): Endpoint {
    let endpoint = this.#endpoints.get(key);
    if (endpoint === undefined) {
      endpoint = { key, queue: [], active: new Set(), latencyMs: 0, lastUsed: this.#now(), ready: false };
      this.#endpoints.set(key, endpoint);
    }
    return endpoint;
  }

  /**
   * How long the `position`-th queued job would wait: the jobs ahead of it, spread over the
   * endpoint's slots, at its latency — the larger of the mean so far and the age of its oldest
   * request in flight (which reveals an endpoint that just started hanging).
   */
  #expectedWaitMs(endpoint: Endpoint, position: number): number {
    const ahead = position + endpoint.active.size - this.#options.perEndpoint;
    if (ahead <= 0) return 0;
    let latency = endpoint.latencyMs;
    const now = this.#now();
    for (const started of endpoint.active) latency = Math.max(latency, now - started);
    return (Math.ceil(ahead / this.#options.perEndpoint) * latency) | 0;
  }

  #markReady(endpoint: Endpoint): void {
    if (!endpoint.ready && endpoint.queue.length > 0 && endpoint.active.size < this.#options.perEndpoint) {
      endpoint.ready = true;
      this.#ready.push(endpoint);
    }
  }

  #pump(): void {
    while (this.#inFlight < this.#options.maxInFlight && this.#ready.length > 0) {
      const endpoint = this.#ready.shift()!;
      endpoint.ready = false;
      if (endpoint.queue.length === 0) continue; // defensive: eviction never empties a ready queue
      const job = endpoint.queue.shift() as T;
      this.#queued--;
      this.#start(endpoint, job);
      this.#markReady(endpoint);
    }
  }

  #start(endpoint: Endpoint, job: T): void {
    // a distinct start time per request (two may start within one clock tick)
    let started = this.#now();
    while (endpoint.active.has(started)) started += 1e-6;
    endpoint.active.add(started);
    endpoint.lastUsed = started;
    this.#inFlight++;
    this.#run(job)
      .catch(() => {
        // the runner reports its own failures; the limiter only keeps count
      })
      .finally(() => {
        const latency = this.#now() - started;
        endpoint.latencyMs =
          endpoint.latencyMs === 0
            ? latency
            : endpoint.latencyMs + LATENCY_WEIGHT * (latency - endpoint.latencyMs);
        endpoint.active.delete(started);
        this.#inFlight--;
        this.#markReady(endpoint);
        this.#pump();
        if (this.#inFlight === 0) {
          for (const resolve of this.#idleWaiters.splice(0)) resolve();
        }
      });
  }
}
