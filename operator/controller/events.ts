import {
  EventsV1Api,
  type EventsV1Event,
  type KubeConfig,
  type KubernetesObject,
  V1MicroTime,
  type V1ObjectReference,
} from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import { isNotFound } from "./kube.ts";
import { mergePatch } from "./status.ts";

// Kubernetes Events (events.k8s.io/v1) the way client-go's new recorder writes them:
// the first occurrence creates an Event; the second turns it into a series
// (series.count = 2, patched at once); later repeats only bump the count in memory,
// flushed every 30 s; a series not seen for 6 minutes is finished, so the next
// occurrence starts a new Event. A token bucket caps the write rate overall.

export const REPORTING_CONTROLLER = "webhooks.dataforce.io/operator";

export interface EventInput {
  type: "Normal" | "Warning";
  /** CamelCase why, e.g. `RetryAccepted`. */
  reason: string;
  /** CamelCase what the controller did or failed to do, e.g. `Retry`. */
  action: string;
  /** Human-readable; cut to 1 kB. */
  note?: string;
  related?: KubernetesObject;
}

export interface EventRecorderOptions {
  /** Unique per process, e.g. the Pod name or the leader election identity. */
  reportingInstance: string;
  reportingController?: string;
  logger?: Logger;
  /** Flush interval of series counts. Default 30 s. */
  heartbeatMs?: number;
  /** A series not observed for this long is finished. Default 6 min. */
  seriesTtlMs?: number;
  /** Writes per second on average, and the burst allowed. Defaults 5 and 25; excess events are dropped. */
  qps?: number;
  burst?: number;
}

interface Series {
  event: EventsV1Event;
  count: number;
  writtenCount: number;
  lastObserved: number;
  /** Writes of one series run in order (a series patch must not overtake the create). */
  writes: Promise<void>;
}

export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly reportingController: string;
  private readonly reportingInstance: string;
  private readonly log: Logger;
  private readonly seriesTtlMs: number;
  private readonly qps: number;
  private readonly burst: number;
  private tokens: number;
  private lastRefill = performance.now();
  private readonly series = new Map<string, Series>();
  private readonly pending = new Set<Promise<void>>();
  private readonly heartbeat: NodeJS.Timeout;
  private sequence = 0;
  /** Events dropped by the rate limit since start. */
  dropped = 0;

  constructor(kc: KubeConfig, options: EventRecorderOptions) {
    this.api = kc.makeApiClient(EventsV1Api);
    this.reportingController = options.reportingController ?? REPORTING_CONTROLLER;
    this.reportingInstance = options.reportingInstance;
    this.log = (options.logger ?? pino({ enabled: false })).child({ component: "events" });
    this.seriesTtlMs = options.seriesTtlMs ?? 6 * 60_000;
    this.qps = options.qps ?? 5;
    this.burst = options.burst ?? 25;
    this.tokens = this.burst;
    this.heartbeat = setInterval(() => this.flushSeries(), options.heartbeatMs ?? 30_000);
    this.heartbeat.unref();
  }

  /** Records an event about `regarding`; never throws and never waits for the API server. */
  record(regarding: KubernetesObject, input: EventInput): void {
    const now = performance.now();
    const key = JSON.stringify([
      input.type,
      input.reason,
      input.action,
      input.note ?? "",
      reference(regarding),
      input.related ? reference(input.related) : null,
    ]);
    const existing = this.series.get(key);
    if (existing && now - existing.lastObserved < this.seriesTtlMs) {
      existing.count++;
      existing.lastObserved = now;
      // The second occurrence makes it a series right away; later ones wait for the heartbeat.
      if (existing.count === 2) this.enqueueWrite(existing, () => this.writeSeries(existing));
      return;
    }
    if (!this.takeToken()) {
      this.dropped++;
      this.log.debug({ reason: input.reason }, "event dropped by the rate limit");
      return;
    }
    const event = this.newEvent(regarding, input);
    const entry: Series = { event, count: 1, writtenCount: 1, lastObserved: now, writes: Promise.resolve() };
    this.series.set(key, entry);
    this.enqueueWrite(entry, () => this.create(entry));
  }

  /** Writes pending series counts and waits for every write in flight (call before exit). */
  async flush(): Promise<void> {
    this.flushSeries();
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  /** Flushes, then stops the heartbeat. */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.flush();
  }

  private flushSeries(): void {
    const now = performance.now();
    for (const [key, entry] of this.series) {
      if (entry.count > entry.writtenCount) this.enqueueWrite(entry, () => this.writeSeries(entry));
      if (now - entry.lastObserved >= this.seriesTtlMs) this.series.delete(key);
    }
  }

  private newEvent(regarding: KubernetesObject, input: EventInput): EventsV1Event {
    const namespace = regarding.metadata?.namespace || "default";
    const now = new V1MicroTime();
    // client-go names events `<regarding>.<hex unix nanoseconds>`; the sequence keeps names in one ms apart.
    const nanos = BigInt(Date.now()) * 1_000_000n + BigInt(this.sequence++ % 1_000_000);
    const name = `${regarding.metadata?.name ?? "unknown"}.${nanos.toString(16)}`;
    return {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name, namespace },
      eventTime: now,
      type: input.type,
      reason: input.reason,
      action: input.action,
      ...(input.note ? { note: truncateUtf8(input.note, 1024) } : {}),
      reportingController: this.reportingController,
      reportingInstance: this.reportingInstance,
      regarding: reference(regarding),
      ...(input.related ? { related: reference(input.related) } : {}),
    };
  }

  private async create(entry: Series): Promise<void> {
    const namespace = entry.event.metadata?.namespace ?? "default";
    try {
      await this.api.createNamespacedEvent({ namespace, body: entry.event });
    } catch (err) {
      this.log.warn({ err, reason: entry.event.reason }, "could not create an event");
    }
  }

  private async writeSeries(entry: Series): Promise<void> {
    const count = entry.count;
    if (count <= entry.writtenCount) return; // an earlier queued write already carried this count
    entry.writtenCount = count;
    const series = { count, lastObservedTime: new V1MicroTime() };
    const namespace = entry.event.metadata?.namespace ?? "default";
    const name = entry.event.metadata?.name ?? "";
    try {
      await this.api.patchNamespacedEvent({ namespace, name, body: { series } }, mergePatch);
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.warn({ err, reason: entry.event.reason }, "could not update an event series");
        return;
      }
      // Expired or deleted meanwhile: write it again, with its series.
      try {
        entry.event = { ...entry.event, series };
        await this.api.createNamespacedEvent({ namespace, body: entry.event });
      } catch (createErr) {
        this.log.warn({ err: createErr, reason: entry.event.reason }, "could not re-create an event");
      }
    }
  }

  private enqueueWrite(entry: Series, write: () => Promise<void>): void {
    const next = entry.writes.then(write);
    entry.writes = next;
    this.pending.add(next);
    void next.finally(() => this.pending.delete(next));
  }

  private takeToken(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.qps);
    this.lastRefill = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  // Decoding a cut multi-byte character yields U+FFFD; drop it.
  return bytes
    .subarray(0, maxBytes - 3)
    .toString("utf8")
    .replace(/\uFFFD$/, "");
}

function reference(obj: KubernetesObject): V1ObjectReference {
  const meta = obj.metadata ?? {};
  return {
    ...(obj.apiVersion ? { apiVersion: obj.apiVersion } : {}),
    ...(obj.kind ? { kind: obj.kind } : {}),
    ...(meta.namespace ? { namespace: meta.namespace } : {}),
    ...(meta.name ? { name: meta.name } : {}),
    ...(meta.uid ? { uid: meta.uid } : {}),
  };
}
