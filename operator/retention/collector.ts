import type { Logger } from "pino";
import type { Counter, Registry } from "prom-client";
import {
  type CachedWebhookEvent,
  durationToMs,
  EventLogSettingsSchema,
  INTEGRATION_NAME,
} from "../api/v1alpha1/index.ts";
import type { ApiWrites } from "../api-writes.ts";
import type { OperatorCaches } from "../caches.ts";
import { isConflict, isNotFound } from "../controller/kube.ts";
import { counter } from "../controller/metrics.ts";
import type { FairLimiter } from "../mirror/fair-limiter.ts";
import { WEBHOOK_EVENTS } from "../resources.ts";
import { type RetentionPolicy, selectForRetention } from "./select.ts";

// Deletes WebhookEvents past their namespace's retention (age, then count), on a
// timer while this process leads. Deletes share the mirror's rate limit. The full log
// stays in the dispatcher either way; this bounds what lives in etcd.

const DEFAULT_EVENT_LOG = EventLogSettingsSchema.parse({});

export interface RetentionCollectorOptions {
  caches: OperatorCaches;
  writes: ApiWrites;
  limiter: Pick<FairLimiter, "take">;
  registry: Registry;
  logger: Logger;
  intervalMs: number;
}

export class RetentionCollector {
  private readonly options: RetentionCollectorOptions;
  private readonly deleted: Counter<"reason">;
  /** Per namespace: creation time (ms) of the newest event deleted; the mirror does not re-create older ones. */
  private readonly watermarks = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(options: RetentionCollectorOptions) {
    this.options = options;
    this.deleted = counter(
      options.registry,
      "dataforce_operator_webhookevents_deleted_total",
      "WebhookEvents deleted by retention, by reason (age or count)",
      ["reason"],
    );
    this.deleted.inc({ reason: "age" }, 0);
    this.deleted.inc({ reason: "count" }, 0);
  }

  /** The namespace's retention as its integration says (the CRD defaults without one). */
  policy(namespace: string): RetentionPolicy {
    const settings =
      this.options.caches.integrations.get(namespace, INTEGRATION_NAME)?.spec?.eventLog ?? DEFAULT_EVENT_LOG;
    return {
      retentionMs: durationToMs(settings.retention ?? DEFAULT_EVENT_LOG.retention),
      maxEvents: settings.maxEvents ?? DEFAULT_EVENT_LOG.maxEvents,
    };
  }

  retiredUpTo(namespace: string): number | undefined {
    return this.watermarks.get(namespace);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.sweep()
        .then(() => undefined)
        .catch((err: unknown) => this.options.logger.warn({ err }, "retention sweep failed"))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over every namespace that has WebhookEvents. */
  async sweep(now = Date.now()): Promise<number> {
    const byNamespace = new Map<string, CachedWebhookEvent[]>();
    for (const event of this.options.caches.events.list()) {
      if (event.metadata.deletionTimestamp) continue;
      const list = byNamespace.get(event.metadata.namespace) ?? [];
      list.push(event);
      byNamespace.set(event.metadata.namespace, list);
    }
    let deleted = 0;
    namespaces: for (const [namespace, events] of byNamespace) {
      if (this.stopped) break;
      const selection = selectForRetention(
        events.map((e) => ({ name: e.metadata.name, createdAt: e.metadata.creationTimestamp ?? "" })),
        this.policy(namespace),
        now,
      );
      if (selection.watermarkMs !== undefined) {
        this.watermarks.set(namespace, Math.max(selection.watermarkMs, this.watermarks.get(namespace) ?? 0));
      }
      const uids = new Map(events.map((e) => [e.metadata.name, e.metadata.uid]));
      for (const [reason, names] of [
        ["age", selection.expired],
        ["count", selection.overflow],
      ] as const) {
        for (const name of names) {
          if (this.stopped) return deleted;
          await this.options.limiter.take(namespace);
          try {
            await this.options.writes.delete(WEBHOOK_EVENTS, { namespace, name }, uids.get(name));
            this.deleted.inc({ reason });
            deleted++;
          } catch (err) {
            // gone already, or re-created since the cache saw it (the uid precondition failed):
            // not this object's turn; the sweep goes on with the next one
            if (isNotFound(err) || isConflict(err)) continue;
            // anything else ends this namespace's pass only: the others still get theirs
            this.options.logger.warn({ err, namespace }, "retention could not delete a WebhookEvent");
            continue namespaces;
          }
        }
      }
      if (deleted > 0) this.options.logger.info({ namespace, deleted }, "retention deleted WebhookEvents");
    }
    return deleted;
  }
}
