import { setTimeout as sleep } from "node:timers/promises";
import { type KubeConfig, type KubernetesObject, Watch } from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import { getJson, isGone, objectKey, type ResourceType, resourcePath } from "./kube.ts";
import { NamespacedStore } from "./store.ts";

// A list+watch cache of one resource that does not give up. client-node's own
// informer re-lists on 410 Gone but stops for good on any other error; this one
// restarts with backoff on every failure, restarts a watch that has gone silent
// (watchdog) and re-lists everything periodically (resync), announcing every object
// as updated so controllers re-check them all.

export interface InformerSource extends ResourceType {
  /** Watch one namespace; all namespaces when absent. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface InformerHandlers<T> {
  add?(obj: T): void;
  /** Also called for every object on resync, then `obj` and `old` may be the same version. */
  update?(obj: T, old: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions<T> {
  logger?: Logger;
  /** Full re-list that reports every object as updated. Default 10 min; 0 disables. */
  resyncPeriodMs?: number;
  /** Restart (with a fresh list) when a list or watch has shown no sign of life for this long. Default 5 min. */
  watchdogMs?: number;
  /** Backoff between failed attempts: doubles from `initialMs` to `maxMs` (defaults 1 s → 30 s) with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Page size of list calls. Default 500. */
  pageSize?: number;
  /** Shared by the informers of a process (the Manager's): how many list pages are in hand at once. Default: no limit. */
  listPages?: ListPageLimit;
  /** Server-side timeout of one watch call; a new watch continues from the last resourceVersion. Default 5–10 min. */
  watchTimeoutSeconds?: () => number;
  /**
   * Converts/validates raw objects (e.g. a zod parse); an object it throws on is logged and left
   * out of the cache. It gets them without `metadata.managedFields` and kubectl's last-applied-configuration, which no cache keeps.
   */
  parse?: (raw: KubernetesObject) => T;
}

/**
 * At most `limit` list pages fetched and parsed at once, across the informers sharing it. A page's
 * raw objects are held until parsed, and informers list together (at start, at every resync; one
 * per resource and namespace with a namespace list): without it each would hold a page at once.
 * Slots go to waiters in order.
 */
export class ListPageLimit {
  private readonly limit: number;
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  async run<R>(signal: AbortSignal, fn: () => Promise<R>): Promise<R> {
    if (this.active < this.limit) this.active++;
    else await this.wait(signal); // the slot is handed over by release(): active stays as it is
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  private wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const granted = () => {
        signal.removeEventListener("abort", aborted);
        resolve();
      };
      const aborted = () => {
        const index = this.waiting.indexOf(granted);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(signal.reason);
      };
      this.waiting.push(granted);
      signal.addEventListener("abort", aborted, { once: true });
    });
  }
}

/** A watch that ends normally sooner than this counts as a failure. */
const MIN_HEALTHY_WATCH_MS = 1_000;

/** A list as JSON on the wire (client-node's V1ListMeta names `continue` `_continue`). */
interface RawList {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubernetesObject[];
}

class WatchStatusError extends Error {
  readonly code: number | undefined;
  constructor(status: { code?: number; reason?: string; message?: string }) {
    super(`watch error ${status.code ?? ""} ${status.reason ?? ""}: ${status.message ?? ""}`);
    this.code = status.code;
  }
}

/** Why the informer aborted its own list or watch. */
type Interruption = "stop" | "resync" | "watchdog";

export class Informer<T extends KubernetesObject = KubernetesObject> {
  readonly source: InformerSource;
  private readonly kc: KubeConfig;
  private readonly watch: Watch;
  private readonly log: Logger;
  private readonly resyncPeriodMs: number;
  private readonly watchdogMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly pageSize: number;
  private readonly listPages: ListPageLimit | undefined;
  private readonly watchTimeoutSeconds: () => number;
  private readonly parse: ((raw: KubernetesObject) => T) | undefined;

  private readonly cache = new NamespacedStore<T>();
  private readonly handlers = new Set<InformerHandlers<T>>();
  private resourceVersion = "";
  private synced = false;
  private readonly syncWaiters: Array<() => void> = [];
  private loop: Promise<void> | undefined;
  private attempt: AbortController | undefined;
  private backoffSleep: AbortController | undefined;
  private lastActivity = 0;
  private resyncDue = false;
  private listing = false;
  /** Waiting for a page slot (ListPageLimit): on purpose, like a backoff, so no watchdog. */
  private waitingForPage = false;
  private stopped = true;
  private timers: NodeJS.Timeout[] = [];

  constructor(kc: KubeConfig, source: InformerSource, options: InformerOptions<T> = {}) {
    this.kc = kc;
    this.source = source;
    this.watch = new Watch(kc);
    this.log = (options.logger ?? pino({ enabled: false })).child({ informer: describe(source) });
    this.resyncPeriodMs = options.resyncPeriodMs ?? 600_000;
    this.watchdogMs = options.watchdogMs ?? 300_000;
    this.initialBackoffMs = options.backoff?.initialMs ?? 1_000;
    this.maxBackoffMs = options.backoff?.maxMs ?? 30_000;
    this.pageSize = options.pageSize ?? 500;
    this.listPages = options.listPages;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? (() => 300 + Math.floor(Math.random() * 300));
    this.parse = options.parse;
  }

  /** Registers handlers; returns a function that unregisters them. Objects already cached are not replayed. */
  on(handlers: InformerHandlers<T>): () => void {
    this.handlers.add(handlers);
    return () => this.handlers.delete(handlers);
  }

  /** Starts listing and watching in the background; idempotent. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
    if (this.resyncPeriodMs > 0) {
      this.timers.push(setInterval(() => this.interrupt("resync"), this.resyncPeriodMs));
    }
    if (this.watchdogMs > 0) {
      this.timers.push(setInterval(() => this.checkWatchdog(), Math.min(this.watchdogMs / 4, 30_000)));
    }
    for (const timer of this.timers) timer.unref();
  }

  /** Stops the watch and every timer; the cache keeps its content. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.attempt?.abort("stop" satisfies Interruption);
    this.backoffSleep?.abort();
    await this.loop;
  }

  /** True once the first complete list has been loaded into the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  /** The cached object; treat it as read-only (it is shared with every other reader). */
  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  getByKey(key: string): T | undefined {
    return this.cache.get(key);
  }

  /** Cached objects, of one namespace or all; read-only like `get`. */
  list(namespace?: string): T[] {
    return this.cache.list(namespace);
  }

  /** The resourceVersion the next watch continues from (`""` = a list comes first). */
  lastSyncResourceVersion(): string {
    return this.resourceVersion;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const attempt = new AbortController();
      this.attempt = attempt;
      this.touch();
      try {
        if (this.resourceVersion === "" || this.resyncDue) {
          this.listing = true;
          try {
            await this.relist(attempt.signal);
          } finally {
            this.listing = false;
          }
        }
        const watchStarted = performance.now();
        await this.watchOnce(attempt.signal);
        if (performance.now() - watchStarted < MIN_HEALTHY_WATCH_MS) {
          // Closed as soon as it opened (an API server going away?): back off instead of spinning.
          failures++;
          await this.backoff(failures);
        } else {
          failures = 0;
        }
      } catch (err) {
        if (this.stopped) break;
        const interruption = attempt.signal.aborted ? (attempt.signal.reason as Interruption) : undefined;
        if (interruption === "resync") continue;
        if (interruption === "watchdog") {
          this.log.warn(
            { idleMs: this.watchdogMs },
            "no sign of life from the API server, restarting list+watch",
          );
          this.resourceVersion = "";
          continue;
        }
        if (isTimeout(err)) continue; // a silent watch timed out client-side: reconnect from where it was
        failures++;
        if (isGone(err)) {
          this.log.debug("resourceVersion too old (410 Gone), re-listing");
          this.resourceVersion = "";
          if (failures === 1) continue;
        } else {
          this.log.warn({ err, failures }, "list/watch failed, retrying with backoff");
        }
        await this.backoff(failures);
      } finally {
        attempt.abort("stop" satisfies Interruption);
      }
    }
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const resync = this.resyncDue;
    const path = resourcePath(this.source, { namespace: this.source.namespace });
    // Parsed page by page: a page's raw objects are garbage before the next one arrives, so a
    // parse hook that drops bulk (WebhookEvent payloads) bounds the list's memory to one page.
    const fresh = new Map<string, T>();
    let continueToken: string | undefined;
    let listVersion = "";
    const fetchPage = async () => {
      this.waitingForPage = false;
      this.touch();
      const page = await getJson<RawList>(this.kc, path, {
        query: {
          limit: String(this.pageSize),
          continue: continueToken,
          labelSelector: this.source.labelSelector,
          fieldSelector: this.source.fieldSelector,
        },
        signal: AbortSignal.any([signal, AbortSignal.timeout(60_000)]),
      });
      this.touch();
      const kind = page.kind?.replace(/List$/, "");
      for (const item of page.items ?? []) {
        // List items carry no apiVersion/kind; give them the list's so they look like watched objects.
        const obj = this.toTyped({ apiVersion: page.apiVersion, kind, ...item });
        if (obj) fresh.set(objectKey(obj), obj);
      }
      continueToken = page.metadata?.continue || undefined;
      listVersion = page.metadata?.resourceVersion ?? "";
    };
    do {
      if (this.listPages) {
        this.waitingForPage = true;
        try {
          await this.listPages.run(signal, fetchPage);
        } finally {
          this.waitingForPage = false;
        }
      } else {
        await fetchPage();
      }
    } while (continueToken);

    for (const [key, old] of this.cache.entries()) {
      if (!fresh.has(key)) {
        this.cache.delete(key);
        this.emit("delete", old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit("add", obj);
      else if (resync || old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) {
        this.emit("update", obj, old);
      }
    }
    this.resourceVersion = listVersion;
    this.resyncDue = false;
    this.log.debug({ objects: fresh.size, resourceVersion: listVersion, resync }, "listed");
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  /** One watch call: resolves when the server ends it normally, rejects on any error. */
  private watchOnce(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      let request: AbortController | undefined;
      let finished = false;
      const finish = (err?: unknown): void => {
        if (finished) return;
        finished = true;
        signal.removeEventListener("abort", onAbort);
        request?.abort();
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => finish(new Error(`watch interrupted: ${String(signal.reason)}`));
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort);

      const query = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.watchTimeoutSeconds(),
        labelSelector: this.source.labelSelector,
        fieldSelector: this.source.fieldSelector,
      };
      const path = resourcePath(this.source, { namespace: this.source.namespace });
      const onEvent = (type: string, obj: KubernetesObject): void => {
        if (finished) return;
        this.touch();
        if (type === "ERROR") {
          finish(new WatchStatusError(obj as { code?: number; reason?: string; message?: string }));
          return;
        }
        if (type === "ADDED" || type === "MODIFIED") this.upsert(obj);
        else if (type === "DELETED") this.remove(obj);
        const version = obj.metadata?.resourceVersion;
        if (version) this.resourceVersion = version;
      };
      this.watch
        .watch(path, query, onEvent, (err: unknown) => finish(err ?? undefined))
        .then((controller) => {
          request = controller;
          if (finished) controller.abort();
          else this.touch(); // connected
        }, finish);
    });
  }

  private upsert(raw: KubernetesObject): void {
    const obj = this.toTyped(raw);
    if (!obj) return;
    const key = objectKey(obj);
    const old = this.cache.get(key);
    this.cache.set(key, obj);
    if (!old) this.emit("add", obj);
    else this.emit("update", obj, old);
  }

  private remove(raw: KubernetesObject): void {
    const key = objectKey(raw);
    const old = this.cache.get(key);
    this.cache.delete(key);
    // The final state from the DELETED event is more recent than the cached one.
    const obj = this.toTyped(raw) ?? old;
    if (obj) this.emit("delete", obj);
  }

  private toTyped(raw: KubernetesObject): T | undefined {
    const stripped = withoutApplyBookkeeping(raw);
    if (!this.parse) return stripped as T;
    try {
      return this.parse(stripped);
    } catch (err) {
      this.log.warn({ err, object: objectKey(raw) }, "object rejected by parse, left out of the cache");
      return undefined;
    }
  }

  private emit(event: "add" | "delete", obj: T): void;
  private emit(event: "update", obj: T, old: T): void;
  private emit(event: "add" | "update" | "delete", obj: T, old?: T): void {
    for (const handlers of this.handlers) {
      try {
        if (event === "update") handlers.update?.(obj, old!);
        else handlers[event]?.(obj);
      } catch (err) {
        this.log.error({ err, event, object: objectKey(obj) }, "informer handler threw");
      }
    }
  }

  private interrupt(reason: Interruption): void {
    if (this.stopped) return;
    if (reason === "resync") {
      this.resyncDue = true;
      // A list under way is the re-list: aborting it would restart it, and a list that takes
      // longer than the period (tens of thousands of objects) would never complete.
      if (this.listing) return;
    }
    this.attempt?.abort(reason);
    this.backoffSleep?.abort();
  }

  private touch(): void {
    this.lastActivity = performance.now();
  }

  private checkWatchdog(): void {
    if (this.backoffSleep || this.waitingForPage) return; // waiting on purpose
    if (performance.now() - this.lastActivity > this.watchdogMs) this.interrupt("watchdog");
  }

  private async backoff(failures: number): Promise<void> {
    const ceiling = Math.min(this.initialBackoffMs * 2 ** (failures - 1), this.maxBackoffMs);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    const sleeping = new AbortController();
    this.backoffSleep = sleeping;
    try {
      await sleep(delay, undefined, { signal: sleeping.signal });
    } catch {
      // woken early by stop()
    } finally {
      this.backoffSleep = undefined;
    }
  }
}

/** kubectl's client-side apply keeps a whole copy of the applied object in this annotation. */
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * The object without apply bookkeeping that nothing here reads: `metadata.managedFields`
 * (server-side apply; a third to a half of a small object), as controller-runtime's
 * TransformStripManagedFields does, and the last-applied-configuration annotation (client-side
 * apply; a second copy of the spec). Every cache and handler sees objects without them; the
 * operator writes only patches, so a stripped field is never written back.
 */
function withoutApplyBookkeeping(raw: KubernetesObject): KubernetesObject {
  const annotations = raw.metadata?.annotations;
  const lastApplied = annotations !== undefined && LAST_APPLIED in annotations;
  if (raw.metadata?.managedFields === undefined && !lastApplied) return raw;
  const { managedFields: _managedFields, ...metadata } = raw.metadata ?? {};
  if (lastApplied) {
    const { [LAST_APPLIED]: _lastApplied, ...rest } = annotations;
    if (Object.keys(rest).length === 0) delete metadata.annotations;
    else metadata.annotations = rest;
  }
  return { ...raw, metadata };
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === "TimeoutError";
}

function describe(source: InformerSource): string {
  const resource = source.group ? `${source.plural}.${source.group}` : source.plural;
  const where = source.namespace ? `${source.namespace}/` : "";
  const selector = source.labelSelector ? `?${source.labelSelector}` : "";
  return `${where}${resource}${selector}`;
}
