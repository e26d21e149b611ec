import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Counter, Registry } from "prom-client";
import { PeriodicLoop } from "../../common/periodic-loop.ts";
import type { Keyspace } from "../../contract/keys.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import type { OperatorCaches } from "../caches.ts";
import { counter } from "../controller/metrics.ts";

export interface RoutingGuardOptions {
  redis: RedisClient;
  keys: Keyspace;
  caches: OperatorCaches;
  /** Reconciles a namespace's integration now (which writes its routing); resolves when done. */
  rewrite(namespace: string): Promise<void>;
  registry: Registry;
  logger: Logger;
  /** How often the epoch is checked. Default 2 s. */
  intervalMs?: number;
}

/**
 * Notices within seconds that Redis lost the routing (its data was lost: a restart without
 * persistence, a failover to an empty replica, a flush) and has every namespace's routing
 * written again, instead of leaving the dispatchers to record events as `integration-missing`
 * until the next resync. The leader keeps an epoch token in Redis; when the token is gone, it writes
 * every namespace that has an integration or webhooks again, then a new token.
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
      "Times every namespace's routing was written again because its epoch was missing from Redis (data loss, or a first start)",
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

  /**
   * One check; true when the routing was written again. An epoch already there is adopted (a new
   * leader takes over the routing as it is). A missing one means Redis lost the routing (or never
   * had it): every namespace is written first, and only then the new epoch, so that dispatchers,
   * which stop routing while an epoch they saw is gone, resume with the whole routing.
   */
  async check(): Promise<boolean> {
    const { redis, keys, caches, rewrite, logger } = this.#options;
    const current = await redis.get(keys.routingEpoch);
    if (current !== null) {
      this.#epoch = current;
      return false;
    }
    const namespaces = new Set<string>();
    for (const integration of caches.integrations.list()) namespaces.add(integration.metadata.namespace);
    for (const webhook of caches.webhooks.list()) namespaces.add(webhook.metadata.namespace);
    if (this.#epoch !== undefined) {
      logger.warn(
        { namespaces: namespaces.size },
        "the routing epoch is gone from Redis (data lost?): writing every namespace's routing again",
      );
    }
    let failed = 0;
    for (const namespace of namespaces) {
      try {
        await rewrite(namespace);
      } catch (err) {
        failed++;
        logger.error({ err, namespace }, "writing a namespace's routing again failed");
      }
    }
    // No epoch while a namespace is missing: the dispatchers keep refusing (503) rather than
    // record that namespace's events as integration-missing; the next check tries again.
    if (failed > 0) throw new Error(`the routing of ${failed} namespace(s) could not be written again`);
    this.#epoch = randomUUID();
    await redis.set(keys.routingEpoch, this.#epoch);
    this.#repairs.inc();
    return true;
  }
}
