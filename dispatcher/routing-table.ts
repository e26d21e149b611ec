import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { type CompiledFilter, compileFilter, FilterCompileError } from "../contract/event-filter.ts";
import type { EventType } from "../contract/event-types.ts";
import type { Keyspace } from "../contract/keys.ts";
import type { RedisClient } from "../contract/redis-client.ts";
import { isReservedHeader } from "../contract/reserved-headers.ts";
import {
  type NamespaceRouting,
  readRoutingRevision,
  readRoutingTable,
  type WebhookRoute,
} from "../contract/routing-config.ts";
import type { SecretBox } from "../contract/secret-box.ts";
import { decodeSigningKey, type SigningKey } from "./delivery/signer.ts";
import type { Metrics } from "./metrics.ts";

/** One namespace's routing, prepared for the hot path. */
export interface PreparedNamespace {
  readonly routing: NamespaceRouting;
  /** Non-paused webhooks by the event they subscribe to. */
  readonly subscribers: ReadonlyMap<EventType, readonly WebhookRoute[]>;
  readonly webhooks: ReadonlyMap<string, PreparedWebhook>;
  readonly signingKeys: readonly SigningKey[];
  /** Compiled filters of the webhooks that have one, by webhook name (compiled once per revision). */
  readonly filters: ReadonlyMap<string, PreparedFilter>;
}

/**
 * A webhook's filter, compiled; or why it did not compile here (the operator writes only
 * expressions that compile, so only a version skew gets here): such a webhook delivers nothing.
 */
export type PreparedFilter = CompiledFilter | { readonly source: string; readonly compileError: string };

export interface PreparedWebhook {
  readonly route: WebhookRoute;
  readonly url: URL;
  /** The configured extra headers without reserved ones, lower-cased. */
  readonly headers: Readonly<Record<string, string>>;
}

export function prepareNamespace(routing: NamespaceRouting): PreparedNamespace {
  const subscribers = new Map<EventType, WebhookRoute[]>();
  const webhooks = new Map<string, PreparedWebhook>();
  const filters = new Map<string, PreparedFilter>();
  for (const route of routing.webhooks) {
    if (route.filter !== undefined) filters.set(route.name, prepareFilter(route.filter));
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(route.headers)) {
      // the operator refuses them; a routing document written otherwise must not override them
      if (!isReservedHeader(name)) headers[name.toLowerCase()] = value;
    }
    webhooks.set(route.name, { route, url: new URL(route.url), headers });
    if (route.paused) continue;
    const list = subscribers.get(route.event) ?? [];
    list.push(route);
    subscribers.set(route.event, list);
  }
  return {
    routing,
    subscribers,
    webhooks,
    signingKeys: routing.signingSecrets.map(decodeSigningKey),
    filters,
  };
}

function prepareFilter(source: string): PreparedFilter {
  try {
    return compileFilter(source);
  } catch (error) {
    if (!(error instanceof FilterCompileError)) throw error;
    return { source, compileError: error.message };
  }
}

export interface RoutingWatcherOptions {
  redis: RedisClient;
  /** A connection of its own: it enters subscriber mode. */
  subscriber: RedisClient;
  keys: Keyspace;
  /** Opens the routing's sealed secrets (into memory only). */
  box: SecretBox;
  pollMs: number;
  logger: Logger;
  metrics: Metrics;
  /** first delay between attempts to load the configuration at start (doubling, ≤ 5 s) */
  retryMs?: number;
}

/**
 * Keeps the routing configuration in memory. A change is picked up from the Pub/Sub
 * announcement at once, or by polling the revision (Pub/Sub is fire-and-forget: a dispatcher
 * that was disconnected would miss it), so within `pollMs` at worst.
 */
/** The tokens the operator generates per namespace: publish (ingest) or read and retry (event log). */
export type NamespaceTokenKind = "ingest" | "eventLog";

export class RoutingWatcher {
  readonly #options: RoutingWatcherOptions;
  #namespaces = new Map<string, PreparedNamespace>();
  #tokenNamespaces: Record<NamespaceTokenKind, Map<string, string>> = {
    ingest: new Map(),
    eventLog: new Map(),
  };
  #revision = -1;
  /** The operator's routing epoch has been seen in Redis: its absence then means data loss. */
  #epochSeen = false;
  /** The routing vanished from Redis (data loss) and is not back yet. */
  #lost = false;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #again = false;
  readonly #stop = new AbortController();

  constructor(options: RoutingWatcherOptions) {
    this.#options = options;
  }

  /** A routing is loaded and present: false before the first load, and while Redis has lost it. */
  get loaded(): boolean {
    return this.#revision >= 0 && !this.#lost;
  }

  get revision(): number {
    return this.#revision;
  }

  /** The namespace whose own ingest token has this SHA-256 digest (see tokenDigest). */
  namespaceOfToken(kind: NamespaceTokenKind, digest: string): string | undefined {
    return this.#tokenNamespaces[kind].get(digest);
  }

  namespace(name: string): PreparedNamespace | undefined {
    return this.#namespaces.get(name);
  }

  /**
   * Loads the configuration, retrying until it is loaded (work routed with an empty table would
   * be recorded as integration-missing or failed as integration-disabled), then follows changes.
   */
  async start(): Promise<void> {
    const { subscriber, keys, logger } = this.#options;
    subscriber.on("message", (channel: string) => {
      if (channel === keys.routingChannel) void this.refresh();
    });
    await subscriber.subscribe(keys.routingChannel);
    let delayMs = this.#options.retryMs ?? 200;
    await this.refresh();
    while (!this.loaded) {
      if (this.#stop.signal.aborted) throw new Error("stopped before the routing configuration was loaded");
      await sleep(delayMs, undefined, { signal: this.#stop.signal }).catch(() => {});
      delayMs = Math.min(delayMs * 2, 5_000);
      await this.refresh();
    }
    this.#timer = setInterval(() => {
      void this.#poll().catch((error: unknown) =>
        logger.warn({ err: error }, "routing revision poll failed"),
      );
    }, this.#options.pollMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stop.abort();
    clearInterval(this.#timer);
  }

  /** Re-reads the configuration (coalescing concurrent calls). */
  refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true;
      return this.#refreshing;
    }
    this.#refreshing = this.#load()
      .catch((error: unknown) => {
        this.#options.metrics.redisErrors.inc({ loop: "routing" });
        this.#options.logger.warn({ err: error }, "routing configuration read failed");
      })
      .finally(() => {
        this.#refreshing = undefined;
        if (this.#again) {
          this.#again = false;
          void this.refresh();
        }
      });
    return this.#refreshing;
  }

  async #poll(): Promise<void> {
    const revision = await readRoutingRevision(this.#options.redis, this.#options.keys);
    if (revision !== this.#revision || this.#lost) await this.refresh();
  }

  async #load(): Promise<void> {
    const { redis, keys, box, logger, metrics } = this.#options;
    const table = await readRoutingTable(redis, keys, box);
    if (table.epoch === null && this.#epochSeen) {
      // Redis lost its data (restart without persistence, failover to an empty replica, flush):
      // ingest answers 503 and work is handed back until the operator has written the routing
      // again (it sets a new epoch once every namespace is written), instead of failing events
      // as integration-missing
      if (!this.#lost)
        logger.error("the routing vanished from Redis (data lost?): not ready until it is back");
      this.#lost = true;
      return;
    }
    if (table.epoch !== null) this.#epochSeen = true;
    if (table.revision === this.#revision && !this.#lost) return;
    this.#lost = false;
    const namespaces = new Map<string, PreparedNamespace>();
    const invalid = [...table.invalid];
    for (const [name, routing] of table.namespaces) {
      try {
        namespaces.set(name, prepareNamespace(routing));
      } catch (error) {
        invalid.push({ namespace: name, error: (error as Error).message });
      }
    }
    for (const { namespace, error } of invalid) {
      logger.error({ namespace, error }, "invalid routing configuration: this namespace routes nothing");
    }
    for (const [name, prepared] of namespaces) {
      for (const [webhook, filter] of prepared.filters) {
        if (!("compileError" in filter)) continue;
        logger.error(
          { namespace: name, webhook, error: filter.compileError },
          "webhook filter does not compile in this dispatcher: the webhook receives nothing",
        );
      }
    }
    const tokenNamespaces = { ingest: new Map<string, string>(), eventLog: new Map<string, string>() };
    for (const [name, { routing }] of namespaces) {
      for (const digest of routing.ingestTokenDigests) tokenNamespaces.ingest.set(digest, name);
      for (const digest of routing.eventLogTokenDigests) tokenNamespaces.eventLog.set(digest, name);
    }
    this.#namespaces = namespaces;
    this.#tokenNamespaces = tokenNamespaces;
    this.#revision = table.revision;
    metrics.routingRevision.set(table.revision);
    metrics.routingNamespaces.set({ state: "valid" }, namespaces.size);
    metrics.routingNamespaces.set({ state: "invalid" }, invalid.length);
    logger.info({ revision: table.revision, namespaces: namespaces.size }, "routing configuration applied");
  }
}
