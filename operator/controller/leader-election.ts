import { setTimeout as sleep } from "node:timers/promises";
import {
  CoordinationV1Api,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type V1Lease,
  type V1LeaseSpec,
  V1MicroTime,
} from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import { isConflict, isNotFound } from "./kube.ts";

// client-go's leaderelection on a coordination.k8s.io/v1 Lease (client-node has none).
//  - A candidate polls the Lease every retryPeriod (with jitter). It takes the Lease
//    when it is free (no holder: released) or expired; "expired" is judged on the
//    local clock, leaseDuration after the candidate last saw the record change, so
//    clock skew between nodes does not matter.
//  - Every write is a compare-and-swap on metadata.resourceVersion: a 409 means
//    another candidate won this round.
//  - The leader renews every retryPeriod; if it cannot renew for renewDeadline
//    (< leaseDuration) it stops leading before anyone else may take over.
//  - On a graceful stop the leader clears holderIdentity so a standby takes over
//    at its next poll instead of waiting for the Lease to expire.

export interface LeaderElectionOptions {
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** Unique per process, e.g. `${hostname}_${randomUUID()}`. */
  identity: string;
  /** How long a standby waits before taking over an unrenewed Lease. Default 15 s. */
  leaseDurationMs?: number;
  /** How long the leader keeps retrying a failed renewal before it gives up leading. Default 10 s. */
  renewDeadlineMs?: number;
  /** Interval between attempts to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  /** Clear the holder on `stop()` so another candidate takes over at once. Default true. */
  releaseOnStop?: boolean;
  /** Called once leadership is acquired; `signal` aborts when it ends. */
  onStartedLeading(signal: AbortSignal): void;
  /** Called when leadership ends: lost (renewal failed) or given up by `stop()`. Only after onStartedLeading. */
  onStoppedLeading(reason: "lost" | "stopped"): void;
  /** Called when a different holder is observed (including ourselves). */
  onNewLeader?(identity: string): void;
  logger?: Logger;
}

const JITTER_FACTOR = 1.2;

export class LeaderElector {
  readonly identity: string;
  private readonly api: CoordinationV1Api;
  private readonly options: LeaderElectionOptions;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly log: Logger;

  private observedRecord: V1LeaseSpec | undefined;
  private observedRaw = "";
  private observedTime = 0;
  private lastRenew = 0;
  private leading = false;
  private running: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(kc: KubeConfig, options: LeaderElectionOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.options = options;
    this.identity = options.identity;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.log = (options.logger ?? pino({ enabled: false })).child({
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
    if (!options.identity) throw new Error("leader election needs a non-empty identity");
    if (this.leaseDurationMs <= this.renewDeadlineMs) {
      throw new Error("leaseDuration must be greater than renewDeadline");
    }
    if (this.renewDeadlineMs <= JITTER_FACTOR * this.retryPeriodMs) {
      throw new Error(`renewDeadline must be greater than ${JITTER_FACTOR} × retryPeriod`);
    }
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder of the Lease as last observed ("" when released). */
  leader(): string | undefined {
    return this.observedRecord?.holderIdentity;
  }

  /**
   * For /healthz: false when this process believes it leads but has not renewed
   * for longer than the lease duration plus `toleranceMs` (a wedged event loop or client).
   */
  healthy(toleranceMs = 20_000): boolean {
    return !this.leading || performance.now() - this.lastRenew <= this.leaseDurationMs + toleranceMs;
  }

  /** Campaigns, then leads until the Lease is lost or `stop()` is called. Call once. */
  run(): Promise<void> {
    this.running ??= this.campaign();
    return this.running;
  }

  /** Stops campaigning or leading; as leader, releases the Lease (unless releaseOnStop is false). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  private async campaign(): Promise<void> {
    const stop = this.stopping.signal;
    this.log.info("waiting to acquire the leader lease");
    while (!stop.aborted) {
      if (await this.tryAcquireOrRenew(this.retryPeriodMs * 2)) break;
      await pause(this.retryPeriodMs * (1 + Math.random() * JITTER_FACTOR), stop);
    }
    if (stop.aborted) return;

    this.leading = true;
    this.log.info("acquired the leader lease");
    const leadership = new AbortController();
    try {
      this.options.onStartedLeading(leadership.signal);
    } catch (err) {
      this.log.error({ err }, "onStartedLeading threw");
    }

    const lost = !(await this.renewUntilLostOrStopped());
    this.leading = false;
    leadership.abort();
    if (lost) {
      this.log.error("failed to renew the leader lease within the renew deadline, no longer leading");
    } else if (this.options.releaseOnStop ?? true) {
      await this.release();
    }
    this.options.onStoppedLeading(lost ? "lost" : "stopped");
  }

  /** Returns false when a renewal failed for renewDeadline, true when stopped. */
  private async renewUntilLostOrStopped(): Promise<boolean> {
    const stop = this.stopping.signal;
    for (;;) {
      await pause(this.retryPeriodMs, stop);
      if (stop.aborted) return true;
      const deadline = performance.now() + this.renewDeadlineMs;
      let renewed = false;
      while (!renewed && !stop.aborted) {
        const left = deadline - performance.now();
        if (left <= 0) return false;
        renewed = await this.tryAcquireOrRenew(left);
        if (!renewed)
          await pause(Math.min(this.retryPeriodMs, Math.max(0, deadline - performance.now())), stop);
      }
      if (stop.aborted) return true;
    }
  }

  /** One round of client-go's tryAcquireOrRenew: true when we hold the Lease afterwards. */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    try {
      return await this.acquireOrRenew(timeoutMs);
    } catch (err) {
      this.log.warn({ err }, "leader election round failed");
      return false;
    }
  }

  private async acquireOrRenew(timeoutMs: number): Promise<boolean> {
    const options = this.requestOptions(timeoutMs);
    const now = new V1MicroTime();
    const leaseDurationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    const { namespace, name } = this.options;
    let current: V1Lease;
    try {
      current = await this.api.readNamespacedLease({ namespace, name }, options);
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.warn({ err }, "could not read the leader lease");
        return false;
      }
      const spec: V1LeaseSpec = {
        holderIdentity: this.identity,
        leaseDurationSeconds,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: 0,
      };
      try {
        const created = await this.api.createNamespacedLease(
          { namespace, body: { metadata: { namespace, name }, spec } },
          options,
        );
        this.observe(created);
        this.lastRenew = performance.now();
        return true;
      } catch (createErr) {
        if (!isConflict(createErr)) this.log.warn({ err: createErr }, "could not create the leader lease");
        return false;
      }
    }

    this.observe(current);
    const record = current.spec ?? {};
    const heldByUs = record.holderIdentity === this.identity;
    const heldByOther = Boolean(record.holderIdentity) && !heldByUs;
    const expiresAt = this.observedTime + (record.leaseDurationSeconds ?? 0) * 1000;
    if (heldByOther && performance.now() < expiresAt) return false;

    const spec: V1LeaseSpec = {
      holderIdentity: this.identity,
      leaseDurationSeconds,
      renewTime: now,
      acquireTime: heldByUs && record.acquireTime ? record.acquireTime : now,
      leaseTransitions: heldByUs ? (record.leaseTransitions ?? 0) : (record.leaseTransitions ?? 0) + 1,
    };
    try {
      const updated = await this.api.replaceNamespacedLease(
        { namespace, name, body: { ...current, spec } },
        options,
      );
      this.observe(updated);
      this.lastRenew = performance.now();
      if (!heldByUs) this.log.info({ previous: record.holderIdentity || null }, "took over the leader lease");
      return true;
    } catch (err) {
      // A conflict: someone else wrote the Lease since we read it, and won this round.
      if (!isConflict(err)) this.log.warn({ err }, "could not update the leader lease");
      return false;
    }
  }

  /** Gives the Lease up: no holder, so the next candidate's poll takes it without waiting for expiry. */
  private async release(): Promise<void> {
    const { namespace, name } = this.options;
    const options = this.requestOptions(this.renewDeadlineMs);
    try {
      const current = await this.api.readNamespacedLease({ namespace, name }, options);
      if (current.spec?.holderIdentity !== this.identity) return;
      const now = new V1MicroTime();
      const spec: V1LeaseSpec = {
        holderIdentity: "",
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: current.spec.leaseTransitions ?? 0,
      };
      await this.api.replaceNamespacedLease({ namespace, name, body: { ...current, spec } }, options);
      this.log.info("released the leader lease");
    } catch (err) {
      this.log.warn({ err }, "could not release the leader lease; it will expire instead");
    }
  }

  private observe(lease: V1Lease): void {
    const spec = lease.spec ?? {};
    const raw = JSON.stringify(spec);
    if (raw === this.observedRaw) return;
    const previousHolder = this.observedRecord?.holderIdentity;
    this.observedRaw = raw;
    this.observedRecord = spec;
    this.observedTime = performance.now();
    if (spec.holderIdentity && spec.holderIdentity !== previousHolder) {
      this.log.info({ leader: spec.holderIdentity }, "new leader observed");
      this.options.onNewLeader?.(spec.holderIdentity);
    }
  }

  /** Bounds one API call by `timeoutMs`, so a hung request cannot outlive the renew deadline. */
  private requestOptions(timeoutMs: number): {
    middleware: ObservableMiddleware[];
    middlewareMergeStrategy: "append";
  } {
    const signal = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
    return {
      middleware: [
        {
          pre: (context) => {
            context.setSignal(signal);
            return new Observable(Promise.resolve(context));
          },
          post: (response) => new Observable(Promise.resolve(response)),
        },
      ],
      middlewareMergeStrategy: "append",
    };
  }
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    // stopped
  }
}
