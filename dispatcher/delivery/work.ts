import type { PreparedNamespace, PreparedWebhook } from "../routing-table.ts";

/**
 * The worker (one per keyspace partition) that holds a work item: the endpoint limiter, shared by
 * the partitions' workers, runs and hands back each item through it.
 */
export interface WorkOwner {
  attempt(work: Work): Promise<void>;
  handBack(work: Work, delayMs: number): void;
}

/** Everything one attempt needs, from the delivery record (or work entry) and the routing table. */
export interface Work {
  owner: WorkOwner;
  /** the work-queue entry this attempt answers (acknowledged with its outcome) */
  entryId: string;
  deliveryId: string;
  /** the record version read; the outcome is recorded only if it is still current */
  version: string;
  namespace: PreparedNamespace;
  webhook: PreparedWebhook;
  payload: string;
  /** the URL the record holds (the webhook's may have changed since) */
  recordUrl: string;
  /** epoch ms */
  ingestedAt: number;
  /** attempts made so far, every cycle */
  attemptCount: number;
  /** attempts made so far in this cycle (a retry by hand starts a new one) */
  cycleAttempts: number;
}
