import type { KubernetesObject } from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import type { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Informer } from "./informer.ts";
import { objectKey, splitKey } from "./kube.ts";
import { counter, durationBuckets, gauge, histogram } from "./metrics.ts";
import { type BackoffOptions, WorkQueue } from "./workqueue.ts";

// informers → work queue → reconcile(request), with controller-runtime's result
// semantics and metrics. A reconciler is level-based: it gets a key, reads the
// current state from the caches, and makes the world match; it never sees the event.

export interface ReconcileRequest {
  /** `namespace/name` (or `name` for cluster-scoped objects). */
  key: string;
  namespace: string;
  name: string;
}

export interface ReconcileResult {
  /** Reconcile this key again after this many milliseconds (and reset its backoff). */
  requeueAfter?: number;
  /** Reconcile this key again after its per-key backoff. */
  requeue?: boolean;
}

/**
 * Throwing any error retries the key with per-key exponential backoff; throwing a
 * TerminalError records the error but does not retry (the next change of the object will).
 * `signal` aborts when the controller stops.
 */
export type Reconciler = (
  request: ReconcileRequest,
  signal: AbortSignal,
  // biome-ignore lint/suspicious/noConfusingVoidType: lets `async () => {}` be a Reconciler
) => Promise<ReconcileResult | undefined | void>;

export class TerminalError extends Error {
  override readonly name = "TerminalError";
}

export type WatchEvent<S> =
  | { type: "add"; object: S }
  | { type: "update"; object: S; old: S }
  | { type: "delete"; object: S };

/** What a controller needs of an informer (an Informer, or a fake in tests). */
export type EventSource<S extends KubernetesObject> = Pick<
  Informer<S>,
  "on" | "start" | "waitForSync" | "list"
>;

export interface WatchSource<S extends KubernetesObject = KubernetesObject> {
  informer: EventSource<S>;
  /** Keys to reconcile when an object changes; the object's own key when absent. */
  map?(object: S): Iterable<string> | string | undefined;
  /** Events for which this returns false are ignored. */
  predicate?(event: WatchEvent<S>): boolean;
  /**
   * How long a key from this source waits before it is reconciled. Changes arriving meanwhile
   * join the same reconcile (the earliest schedule wins), so a bulk change costs a few
   * reconciles, not one per object. Default 0.
   */
  delayMs?: number;
}

export interface ControllerOptions<T extends KubernetesObject> {
  /** The `controller` label of the metrics and the `name` of the work queue. */
  name: string;
  /** The primary resource: its objects' keys are what `reconcile` receives. */
  for: EventSource<T>;
  forPredicate?(event: WatchEvent<T>): boolean;
  /** Other resources whose changes enqueue keys of the primary resource (through `map`). */
  watches?: WatchSource<KubernetesObject>[];
  reconcile: Reconciler;
  /**
   * Keys to queue at every start besides the objects the informers hold: those of objects that
   * may be gone while something outside Kubernetes still acts for them (deleted while no leader
   * watched, so no reconcile saw the deletion). A failure to read them is logged, not fatal.
   */
  startKeys?: () => Promise<readonly string[]>;
  /** Concurrent reconciles (never two for one key). Default 1. */
  workers?: number;
  registry?: Registry;
  logger?: Logger;
  backoff?: BackoffOptions;
}

type Result = "success" | "error" | "requeue" | "requeue_after";

interface ControllerMetrics {
  total: Counter<"controller" | "result">;
  errors: Counter<"controller">;
  time: Histogram<"controller">;
  activeWorkers: Gauge<"controller">;
}

export class Controller<T extends KubernetesObject = KubernetesObject> {
  readonly name: string;
  private readonly options: ControllerOptions<T>;
  private readonly log: Logger;
  private readonly metrics: ControllerMetrics | undefined;
  private queue: WorkQueue | undefined;
  private workers: Promise<void> | undefined;
  private abort: AbortController | undefined;
  private unsubscribes: Array<() => void> = [];

  constructor(options: ControllerOptions<T>) {
    this.name = options.name;
    this.options = options;
    this.log = (options.logger ?? pino({ enabled: false })).child({ controller: options.name });
    const registry = options.registry;
    if (registry) {
      const labels = { controller: this.name };
      this.metrics = {
        total: counter(
          registry,
          "controller_runtime_reconcile_total",
          "Total number of reconciliations per controller",
          ["controller", "result"],
        ),
        errors: counter(
          registry,
          "controller_runtime_reconcile_errors_total",
          "Total number of reconciliation errors per controller",
          ["controller"],
        ),
        time: histogram(
          registry,
          "controller_runtime_reconcile_time_seconds",
          "Length of time per reconciliation per controller",
          ["controller"],
          durationBuckets,
        ),
        activeWorkers: gauge(
          registry,
          "controller_runtime_active_workers",
          "Number of currently used workers per controller",
          ["controller"],
        ),
      };
      // Zero-valued series from the start, so rate() and alerts see the controller before its first error.
      for (const result of ["success", "error", "requeue", "requeue_after"] satisfies Result[]) {
        this.metrics.total.inc({ ...labels, result }, 0);
      }
      this.metrics.errors.inc(labels, 0);
      this.metrics.activeWorkers.set(labels, 0);
      gauge(
        registry,
        "controller_runtime_max_concurrent_reconciles",
        "Maximum number of concurrent reconciles per controller",
        ["controller"],
      ).set(labels, options.workers ?? 1);
    }
  }

  get running(): boolean {
    return this.queue !== undefined && !this.queue.shuttingDown;
  }

  /**
   * Subscribes to the informers (starting them if needed), waits until they have
   * synced, queues every object they hold, and starts the workers. Resolves once
   * the workers run; `stop()` ends them. A stopped controller can be started again.
   * `leadership` (from the manager) aborts the reconcilers' signal when leadership ends.
   */
  async start(leadership?: AbortSignal): Promise<void> {
    if (this.queue) throw new Error(`controller ${this.name} is already started`);
    const queue = new WorkQueue({
      name: this.name,
      ...(this.options.registry ? { registry: this.options.registry } : {}),
      ...(this.options.backoff ? { backoff: this.options.backoff } : {}),
    });
    this.queue = queue;
    const abort = new AbortController();
    this.abort = abort;
    if (leadership?.aborted) abort.abort();
    leadership?.addEventListener("abort", () => abort.abort(), { once: true });
    const primary: WatchSource<T> = { informer: this.options.for };
    if (this.options.forPredicate) primary.predicate = this.options.forPredicate;
    const sources: WatchSource<KubernetesObject>[] = [primary, ...(this.options.watches ?? [])];
    for (const source of sources) {
      const handle = (event: WatchEvent<KubernetesObject>): void => {
        if (source.predicate && !source.predicate(event)) return;
        for (const key of this.keysFor(source, event.object)) queue.addAfter(key, source.delayMs ?? 0);
      };
      this.unsubscribes.push(
        source.informer.on({
          add: (object) => handle({ type: "add", object }),
          update: (object, old) => handle({ type: "update", object, old }),
          delete: (object) => handle({ type: "delete", object }),
        }),
      );
      source.informer.start();
    }
    await Promise.all(sources.map((s) => s.informer.waitForSync()));
    if (queue.shuttingDown) return; // stopped while waiting
    for (const source of sources) {
      for (const object of source.informer.list()) {
        for (const key of this.keysFor(source, object)) queue.add(key);
      }
    }
    if (this.options.startKeys) {
      try {
        for (const key of await this.options.startKeys()) queue.add(key);
      } catch (err) {
        this.log.warn({ err }, "could not read the start keys; the informers' objects are reconciled");
      }
    }
    const signal = this.abort.signal;
    this.workers = queue.run((key) => this.process(queue, key, signal), this.options.workers ?? 1);
    this.log.info({ workers: this.options.workers ?? 1 }, "controller started");
  }

  /** Stops taking keys, aborts the reconcilers' signal, and waits for in-flight reconciles to finish. */
  async stop(): Promise<void> {
    const queue = this.queue;
    if (!queue) return;
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    this.abort?.abort();
    await queue.shutdown();
    await this.workers;
    this.queue = undefined;
    this.workers = undefined;
    this.log.info("controller stopped");
  }

  /** Queues a key by hand (e.g. from a non-Kubernetes source such as a Redis stream). */
  enqueue(key: string, afterMs = 0): void {
    this.queue?.addAfter(key, afterMs);
  }

  private keysFor(source: WatchSource<KubernetesObject>, object: KubernetesObject): string[] {
    if (!source.map) return [objectKey(object)];
    try {
      const mapped = source.map(object);
      if (mapped === undefined) return [];
      return typeof mapped === "string" ? [mapped] : [...mapped];
    } catch (err) {
      this.log.error({ err, object: objectKey(object) }, "watch mapper threw");
      return [];
    }
  }

  private async process(queue: WorkQueue, key: string, signal: AbortSignal): Promise<void> {
    const labels = { controller: this.name };
    const request: ReconcileRequest = { key, ...splitKey(key) };
    const started = performance.now();
    this.metrics?.activeWorkers.inc(labels);
    let result: Result;
    try {
      const outcome = (await this.options.reconcile(request, signal)) ?? {};
      if (outcome.requeueAfter !== undefined && outcome.requeueAfter > 0) {
        queue.forget(key);
        queue.addAfter(key, outcome.requeueAfter);
        result = "requeue_after";
      } else if (outcome.requeue) {
        queue.addRateLimited(key);
        result = "requeue";
      } else {
        queue.forget(key);
        result = "success";
      }
    } catch (err) {
      result = "error";
      this.metrics?.errors.inc(labels);
      if (err instanceof TerminalError) {
        queue.forget(key);
        this.log.error({ err, key }, "reconcile failed permanently, not retrying");
      } else {
        queue.addRateLimited(key);
        this.log.warn(
          { err, key, retries: queue.numRequeues(key) },
          "reconcile failed, retrying with backoff",
        );
      }
    } finally {
      this.metrics?.activeWorkers.dec(labels);
    }
    this.metrics?.total.inc({ ...labels, result });
    this.metrics?.time.observe(labels, (performance.now() - started) / 1000);
  }
}

// Predicates and mappers for `watches`, after controller-runtime's.
