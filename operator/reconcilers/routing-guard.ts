import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Counter, Registry } from "prom-client";
import { PeriodicLoop } from "../../common/periodic-loop.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { OperatorCaches } from "../caches.ts";
import { counter } from "../controller/metrics.ts";
import { integrationKey } from "./integration.ts";

export interface RoutingGuardOptions {
  redis: Redis;
  keys: Keyspace;
  caches: OperatorCaches;
  /** Reconciles a namespace's integration key (which rewrites its routing). */
  reconcile(key: string): void;
  registry: Registry;
  logger: Logger;
  /** How often the epoch is checked. Default 2 s. */
  intervalMs?: number;
}

/**
 * Notices within seconds that Redis lost the routing (its data was lost: a restart without
 * persistence, a failover to an empty replica, a flush) and has every namespace's routing
 * written again, instead of leaving the dispatchers to record events as `integration-missing`
 * until the next resync. The leader keeps an epoch token in Redis; when the token is gone (or not
 * its own), it writes a new one and reconciles every namespace that has an integration or webhooks.
 */
export class RoutingGuard {
  readonly #options: RoutingGuardOptions;
  readonly #loop: PeriodicLoop;
  readonly #repairs: Counter<never>;
  #epoch: string | undefined;

  constructor(options: RoutingGuardOptions) {
    this.#options = options;
    this.#repairs = counter(
      options.registry,
      "dataforce_operator_routing_rewrites_total",
      "Times every namespace's routing was written again because Redis had lost it (or at leadership start)",
      [],
    );
    this.#loop = new PeriodicLoop({
      intervalMs: options.intervalMs ?? 2_000,
      immediate: true,
      tick: () => this.check(),
      onError: (err) => options.logger.warn({ err }, "checking the routing epoch failed; retrying"),
    });
  }

  start(): void {
    this.#loop.start();
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  /** One check; true when the routing was (re)written. */
  async check(): Promise<boolean> {
    const { redis, keys, caches, reconcile, logger } = this.#options;
    const current = await redis.get(keys.routingEpoch);
    if (current !== null && current === this.#epoch) return false;
    const epoch = randomUUID();
    await redis.set(keys.routingEpoch, epoch);
    const namespaces = new Set<string>();
    for (const integration of caches.integrations.list()) namespaces.add(integration.metadata.namespace);
    for (const webhook of caches.webhooks.list()) namespaces.add(webhook.metadata.namespace);
    for (const namespace of namespaces) reconcile(integrationKey(namespace));
    if (this.#epoch !== undefined) {
      logger.warn(
        { namespaces: namespaces.size },
        "the routing epoch is gone from Redis (data lost?): writing every namespace's routing again",
      );
    }
    this.#epoch = epoch;
    this.#repairs.inc();
    return true;
  }
}
