/**
 * What the fault scenarios on Kubernetes share: two accounts under load side by side — `bulk`
 * (most of the traffic, mirror FailedOnly: what the README advises for high volume) and `mirrored`
 * (every delivery becomes a WebhookEvent) — and the WebhookEvent side of the accounting.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { parse, stringify } from "yaml";
import type { Keyspace } from "../../contract/keys.ts";
import type { E2eWorld } from "../e2e/harness.ts";
import { integrationYaml, routingLive, webhookYaml } from "../e2e/k8s.ts";
import { applyYaml, kubectl } from "../env/kubectl.ts";
import {
  type Accounting,
  account,
  drain,
  failedOf,
  type Load,
  type LoadReceiver,
  type LoadResult,
  type LoadTarget,
  type Phase,
  redisPhases,
} from "./load.ts";

export const WEBHOOK = "orders";
/** Events per second of each account (together "a few hundred"). */
export const BULK_RATE = 180;
export const MIRRORED_RATE = 20;

/** Backoff of the mirrored account: a failed first attempt waits this long (with jitter) for its retry. */
export const MIRRORED_RETRY_DELAY = "2s";

/** An integration and one webhook in each account, live in the dispatcher. */
export async function setupAccounts(world: E2eWorld, receiver: LoadReceiver): Promise<void> {
  const { bulk, mirrored } = accounts(world);
  // the circuit breaker off in both: the faults' receivers fail every first attempt on purpose,
  // and these scenarios count what Redis faults lose, not how endpoint health holds deliveries
  const breakerOff = { consecutiveFailures: 0 };
  const mirroredIntegration = parse(
    integrationYaml(mirrored, { mirror: "All", maxEvents: 100_000, circuitBreaker: breakerOff }),
  ) as {
    spec: { delivery: Record<string, unknown> };
  };
  mirroredIntegration.spec.delivery.backoff = {
    initialDelay: MIRRORED_RETRY_DELAY,
    maxDelay: MIRRORED_RETRY_DELAY,
    multiplier: 1,
  };
  await applyYaml(
    [
      integrationYaml(bulk, { mirror: "FailedOnly", maxEvents: 100_000, circuitBreaker: breakerOff }),
      webhookYaml(bulk, WEBHOOK, "job.created", receiver.url("/bulk")),
      stringify(mirroredIntegration),
      webhookYaml(mirrored, WEBHOOK, "job.created", receiver.url("/mirrored")),
    ].join("---\n"),
  );
  for (const ns of [bulk, mirrored]) await routingLive(world, ns, (r) => r?.webhooks.length === 1, 30_000);
}

export function accounts(world: E2eWorld): { bulk: string; mirrored: string } {
  return { bulk: world.namespaces.bulk!, mirrored: world.namespaces.mirrored! };
}

/** The load's targets, weighted to BULK_RATE : MIRRORED_RATE. */
export function targets(world: E2eWorld): LoadTarget[] {
  const { bulk, mirrored } = accounts(world);
  return [
    { namespace: bulk, type: "job.created", webhooks: [WEBHOOK], weight: BULK_RATE / MIRRORED_RATE },
    { namespace: mirrored, type: "job.created", webhooks: [WEBHOOK] },
  ];
}

export interface MirroredEvent {
  readonly phase: Phase | undefined;
  /** The reason of its Ready condition (`Sent`, `Lost`, …). */
  readonly reason: string | undefined;
}

/** The WebhookEvents of a namespace by name, from the API server. */
export async function webhookEvents(namespace: string): Promise<Map<string, MirroredEvent>> {
  const template =
    '{range .items[*]}{.metadata.name}{" "}{.status.phase}{" "}{.status.conditions[?(@.type=="Ready")].reason}{"\\n"}{end}';
  const { stdout } = await kubectl(["get", "webhookevents", "-n", namespace, "-o", `jsonpath=${template}`], {
    timeoutMs: 120_000,
  });
  const events = new Map<string, MirroredEvent>();
  for (const line of stdout.split("\n")) {
    const [name, phase, reason] = line.split(" ");
    if (!name) continue;
    events.set(name, {
      phase: phase === "QUEUED" || phase === "SENT" || phase === "FAILED" ? phase : undefined,
      reason: reason || undefined,
    });
  }
  return events;
}

/**
 * Waits until the namespace's WebhookEvents say what `expected` says of each delivery (its phase
 * in the dispatcher's log); resolves with when they did (epoch ms).
 */
export async function mirrorCaughtUp(
  namespace: string,
  expected: ReadonlyMap<string, Phase | undefined>,
  timeoutMs = 60_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let behind = expected.size;
  for (;;) {
    const mirrored = await webhookEvents(namespace).catch(() => new Map<string, MirroredEvent>());
    behind = [...expected].filter(([id, phase]) => mirrored.get(id)?.phase !== phase).length;
    if (behind === 0) return Date.now();
    if (Date.now() > deadline) {
      throw new Error(`${behind} of ${expected.size} WebhookEvents in ${namespace} still behind the log`);
    }
    await sleep(500);
  }
}

/**
 * Ends a scenario's load and counts it: stops the producers, waits until the dispatchers are
 * done, classifies every owed delivery, and waits until the `mirrored` account's WebhookEvents
 * show what the log shows (when: `caughtUpAt`, epoch ms; how many: `mirroredCount`).
 */
export async function stopAndCount(
  world: E2eWorld,
  keys: Keyspace,
  load: Load,
  receiver: LoadReceiver,
): Promise<{ result: LoadResult; counts: Accounting; caughtUpAt: number; mirroredCount: number }> {
  const result = await load.stop();
  await drain(world.redis, keys, receiver);
  const phases = await redisPhases(
    world.redis,
    keys,
    result.events.flatMap((event) => event.webhookIds),
  );
  const counts = account(result.events, receiver.copies(), failedOf(phases));
  const { mirrored } = accounts(world);
  const mirroredPhases = new Map(
    result.events
      .filter((event) => event.namespace === mirrored)
      .flatMap((event) => event.webhookIds.map((id) => [id, phases.get(id)] as const)),
  );
  const caughtUpAt = await mirrorCaughtUp(mirrored, mirroredPhases);
  return { result, counts, caughtUpAt, mirroredCount: mirroredPhases.size };
}

/** The holder of the operators' leader Lease. */
export async function leaseHolder(world: E2eWorld): Promise<string> {
  const { stdout } = await kubectl([
    "get",
    "lease",
    "dataforce-webhooks-operator",
    "-n",
    world.operatorNamespace,
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  return stdout.trim();
}
