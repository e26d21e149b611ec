import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import type { Keyspace } from "../../contract/keys.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { API_VERSION, type WebhookReplay } from "../../operator/api/v1alpha1/index.ts";
import type { Cache } from "../../operator/caches.ts";
import type { ReconcileResult } from "../../operator/controller/controller.ts";
import { replayReconciler } from "../../operator/replay/replay.ts";
import { uniqueKeyTag } from "./fixtures.ts";

// One WebhookReplay in a fake API server, for the replay's reconciler with real Redis and real
// scripts: the cache reads the object, status patches merge into it as the API server's merge
// patch would (null removes a field), Events are recorded by reason.

export interface FakeReplayOptions {
  namespace?: string;
  name?: string;
  generation?: number;
  /** the object's creation (the end of the window without `spec.to`); default now */
  createdAt?: Date;
}

export interface FakeReplay {
  readonly object: WebhookReplay;
  /** every status patch, in order */
  readonly patches: Array<Record<string, unknown>>;
  /** the reasons of the Events recorded */
  readonly events: string[];
  /** the Ready condition */
  ready(): NonNullable<NonNullable<WebhookReplay["status"]>["conditions"]>[number] | undefined;
  /** the object is gone from the cache (deleted) */
  delete(): void;
  /**
   * Reconciles as a new operator process (no memory of an earlier run) until the reconciler has
   * nothing more to do or asks to wait longer than `maxWaitMs`, or `rounds` are done; returns the
   * last result and how many rounds ran.
   */
  run(
    deps: { redis: RedisClient; keys: Keyspace },
    options?: { rounds?: number; maxWaitMs?: number },
  ): Promise<{ result: ReconcileResult | undefined; rounds: number }>;
}

export function fakeReplay(spec: Record<string, unknown>, options: FakeReplayOptions = {}): FakeReplay {
  const namespace = options.namespace ?? "ns";
  const name = options.name ?? "replay";
  const object: WebhookReplay = {
    apiVersion: API_VERSION,
    kind: "WebhookReplay",
    metadata: {
      name,
      namespace,
      uid: `uid-${uniqueKeyTag()}`,
      generation: options.generation ?? 1,
      creationTimestamp: (options.createdAt ?? new Date()).toISOString(),
    },
    spec: spec as WebhookReplay["spec"],
  };
  let deleted = false;
  const replays: Cache<WebhookReplay> = {
    get: (ns, n) => (!deleted && ns === namespace && n === name ? object : undefined),
    list: () => (deleted ? [] : [object]),
  };
  const patches: Array<Record<string, unknown>> = [];
  const events: string[] = [];
  const writes = {
    async patchStatus(_type: unknown, _target: unknown, patch: Record<string, unknown>) {
      patches.push(patch);
      const status: Record<string, unknown> = { ...(object.status ?? {}) };
      for (const [key, value] of Object.entries(patch)) {
        if (value === null) delete status[key];
        else status[key] = value;
      }
      object.status = status as WebhookReplay["status"];
    },
  };
  return {
    object,
    patches,
    events,
    ready: () => object.status?.conditions?.find((c) => c.type === "Ready"),
    delete: () => {
      deleted = true;
    },
    async run({ redis, keys }, { rounds = 20, maxWaitMs = 1_000 } = {}) {
      const reconcile = replayReconciler({
        replays,
        redis,
        keys,
        writes,
        recordEvent: (_regarding, input) => events.push(input.reason),
        logger: pino({ enabled: false }),
      });
      let result: ReconcileResult | undefined;
      for (let round = 1; round <= rounds; round++) {
        result = (await reconcile(
          { key: `${namespace}/${name}`, namespace, name },
          new AbortController().signal,
        )) as ReconcileResult | undefined;
        if (!result?.requeueAfter || result.requeueAfter > maxWaitMs) return { result, rounds: round };
        await sleep(result.requeueAfter);
      }
      return { result, rounds };
    },
  };
}
