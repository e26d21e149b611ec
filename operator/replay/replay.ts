import type { Logger } from "pino";
import {
  type ArchiveReplayRequest,
  cancelArchiveReplays,
  forgetArchiveReplay,
  readArchiveReplayProgress,
  requestArchiveReplay,
} from "../../contract/archive-replays.ts";
import {
  addDeliveries,
  type RequeuablePhase,
  type RetryOutcome,
  readDeliveries,
  requestRetries,
} from "../../contract/deliveries.ts";
import { copyDelivery, type ResolvedCopyTarget, resolveCopyTarget } from "../../contract/delivery-copy.ts";
import { type DeliverySummary, listDeliveries } from "../../contract/delivery-log.ts";
import type { Keyspace } from "../../contract/keys.ts";
import { onePartition, type Partitions } from "../../contract/partitions.ts";
import { readRecordLimits } from "../../contract/record-limits.ts";
import type { RedisClient } from "../../contract/redis-client.ts";
import { archivesToStore } from "../../contract/restore-requests.ts";
import {
  type WebhookReplay,
  type WebhookReplaySpec,
  WebhookReplaySpecSchema,
  type WebhookReplayStatus,
} from "../api/v1alpha1/index.ts";
import type { ApiWrites } from "../api-writes.ts";
import type { Cache } from "../caches.ts";
import type { ReconcileResult, Reconciler } from "../controller/controller.ts";
import type { EventInput } from "../controller/events.ts";
import { type ReadyVerdict, type Standing, standingConditions } from "../controller/kstatus-conditions.ts";
import { isNotFound } from "../controller/kube.ts";
import { WEBHOOK_REPLAYS } from "../resources.ts";

// WebhookReplay: requeues the deliveries of the namespace's event log (in Redis, so also those
// never mirrored as WebhookEvents) that its time range, phases, webhook and event type select.
//   observe: the replay and its progress (status, or this process's newer memory of it);
//   compare: done for this generation? then nothing (re-applying it does nothing);
//   act:     the next page of the log, newest first, through the retry script with the token
//            `replay:<uid>:<generation>` — honoured once per delivery, so a crash between the
//            requeue and the status write, a second look at a page, or another operator replica
//            never requeues a delivery twice; a new name or a changed spec is a new token;
//            With `targetWebhook`, each selected delivery is instead copied to that webhook as a
//            new delivery of its event (add-deliveries), the copy's id derived from the token and
//            the original's, so that it too is made once;
//   report:  matched / requeued / skipped, the cursor, Ready (Replaying → Complete).
// Rate: at most `maxPerSecond` deliveries a second, one page a second.
// With a durable log store (the dispatchers archive to PostgreSQL), Redis's log reaches back to the
// archive horizon only: the Redis walk ends there, and the rest of the replay is left to the
// dispatchers (contract/archive-replays.ts), which walk the store with the same token and rate;
// the operator, which has no connection to the store, reports their progress (`source: DurableStore`).

export const ReplayReason = {
  Replaying: "Replaying",
  Complete: "Complete",
  InvalidSpec: "InvalidSpec",
  TargetNotReady: "TargetNotReady",
} as const;

/** How each reason reads to GitOps tools (README status model). */
export const REPLAY_STANDING: Readonly<Record<keyof typeof ReplayReason, Standing>> = {
  Replaying: "Progressing",
  Complete: "Ready",
  InvalidSpec: "Stalled",
  // the target may be created, resumed or enabled: the replay waits and looks again
  TargetNotReady: "Progressing",
};

const PAGE_INTERVAL_MS = 1_000;
/** How often a replay waiting for its targetWebhook looks again. */
const TARGET_RECHECK_MS = 10_000;
/** Pages of deliveries newer than `to` (nothing to requeue) walked through in one reconcile. */
const MAX_SKIP_PAGES = 20;

export interface ReplayReconcilerDeps {
  replays: Cache<WebhookReplay>;
  redis: RedisClient;
  /** The global keys (record limits); the only partition unless `partitions` is given. */
  keys: Keyspace;
  /** The keyspace's partitions: a namespace's deliveries are in its own. */
  partitions?: Partitions;
  writes: Pick<ApiWrites, "patchStatus">;
  recordEvent(regarding: WebhookReplay, input: EventInput): void;
  logger: Logger;
  now?: () => Date;
}

/** The progress of one generation of a replay. */
interface Progress {
  generation: number;
  matched: number;
  requeued: number;
  skipped: number;
  cursor: string | undefined;
  startedAt: string;
  complete: boolean;
  /** the part of the log being walked: Redis, then the durable store (by the dispatchers) */
  source: ReplaySource;
}

type ReplaySource = "Redis" | "DurableStore";

/** The retry token of a replay's generation: honoured once per delivery. */
export function replayToken(replay: WebhookReplay): string {
  return `replay:${replay.metadata.uid ?? `${replay.metadata.namespace}/${replay.metadata.name}`}:${replay.metadata.generation ?? 1}`;
}

export function replayReconciler(deps: ReplayReconcilerDeps): Reconciler {
  const now = deps.now ?? (() => new Date());
  // The progress this process wrote last, by uid: the cache may not show it yet, and reading an
  // older status would walk a page again (harmless for deliveries, the token sees to that, but
  // the counts would be off). Also when the next page is due.
  const written = new Map<string, Progress>();
  const nextPageAt = new Map<string, number>();

  return async ({ namespace, name }): Promise<ReconcileResult | undefined> => {
    const replay = deps.replays.get(namespace, name);
    if (!replay || replay.metadata.deletionTimestamp) {
      // a deleted replay stops: the dispatchers' walk of the store too
      const keys = partitionOf(deps, namespace);
      if (await archivesToStore(deps.redis, keys))
        await cancelArchiveReplays(deps.redis, keys, namespace, name);
      return undefined;
    }
    const uid = replay.metadata.uid ?? `${namespace}/${name}`;
    const generation = replay.metadata.generation ?? 1;

    const parsed = WebhookReplaySpecSchema.safeParse(replay.spec ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "spec"}: ${i.message}`).join("; ");
      await writeStatus(
        deps,
        replay,
        generation,
        {},
        {
          status: "False",
          reason: ReplayReason.InvalidSpec,
          message: `invalid spec: ${issues}`,
        },
      );
      return undefined;
    }
    const spec = parsed.data;
    const progress = currentProgress(replay, written.get(uid), generation, now());
    if (progress.complete) return undefined;

    const waitMs = (nextPageAt.get(uid) ?? 0) - now().getTime();
    if (waitMs > 0) return { requeueAfter: waitMs };

    let target: ReplayTarget | undefined;
    if (spec.targetWebhook !== undefined) {
      const resolved = await resolveTarget(deps, namespace, spec.targetWebhook);
      if (typeof resolved === "string") {
        try {
          await writeStatus(deps, replay, generation, statusOf(progress, now()), {
            status: "False",
            reason: ReplayReason.TargetNotReady,
            message: resolved,
          });
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
        return { requeueAfter: TARGET_RECHECK_MS };
      }
      target = resolved;
    }

    const next =
      progress.source === "DurableStore"
        ? await followStoreWalk(deps, namespace, spec, replay, progress)
        : await walkRedisPage(deps, namespace, spec, replay, progress, target);
    const verdict: ReadyVerdict = next.complete
      ? {
          status: "True",
          reason: ReplayReason.Complete,
          message: `replayed: ${next.requeued} of ${next.matched} matched deliveries ${resent(spec)}, ${next.skipped} skipped`,
        }
      : {
          status: "False",
          reason: ReplayReason.Replaying,
          message: `replaying: ${next.requeued} of ${next.matched} matched deliveries ${resent(spec)} so far, ${next.skipped} skipped${next.source === "DurableStore" ? "; the dispatchers walk the durable log store for those Redis no longer lists" : ""}`,
        };
    // waiting for the dispatchers' walk: nothing to write until it moves
    if (progress.source === "DurableStore" && !next.complete && sameCounts(progress, next))
      return { requeueAfter: PAGE_INTERVAL_MS };
    try {
      await writeStatus(deps, replay, generation, statusOf(next, now()), verdict);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    if (next.complete && next.source === "DurableStore")
      await forgetArchiveReplay(deps.redis, partitionOf(deps, namespace), replayToken(replay));
    written.set(uid, next);
    if (written.size > 10_000) written.delete(written.keys().next().value ?? "");
    deps.logger.info(
      {
        namespace,
        name,
        matched: next.matched,
        requeued: next.requeued,
        skipped: next.skipped,
        complete: next.complete,
        source: next.source,
      },
      "replay page done",
    );
    if (next.complete) {
      nextPageAt.delete(uid);
      deps.recordEvent(replay, {
        type: "Normal",
        reason: "ReplayComplete",
        action: "Replay",
        note: verdict.message,
      });
      return undefined;
    }
    nextPageAt.set(uid, now().getTime() + PAGE_INTERVAL_MS);
    if (nextPageAt.size > 10_000) nextPageAt.delete(nextPageAt.keys().next().value ?? "");
    return { requeueAfter: PAGE_INTERVAL_MS };
  };
}

function sameCounts(a: Progress, b: Progress): boolean {
  return a.matched === b.matched && a.requeued === b.requeued && a.skipped === b.skipped;
}

/** The progress to go on from: this process's memory when it is of this generation and ahead. */
function currentProgress(
  replay: WebhookReplay,
  remembered: Progress | undefined,
  generation: number,
  now: Date,
): Progress {
  if (remembered && remembered.generation === generation) return remembered;
  const status: WebhookReplayStatus = replay.status ?? {};
  if (status.observedGeneration !== generation) {
    // a new replay, or a changed spec: from the start, with the new generation's token
    return {
      generation,
      matched: 0,
      requeued: 0,
      skipped: 0,
      cursor: undefined,
      startedAt: now.toISOString(),
      complete: false,
      source: "Redis",
    };
  }
  const ready = status.conditions?.find((c) => c.type === "Ready");
  return {
    generation,
    matched: status.matched ?? 0,
    requeued: status.requeued ?? 0,
    skipped: status.skipped ?? 0,
    cursor: status.cursor,
    startedAt: status.startedAt ?? now.toISOString(),
    complete: ready?.reason === ReplayReason.Complete && ready.observedGeneration === generation,
    source: status.source ?? "Redis",
  };
}

interface PageResult {
  matched: number;
  requeued: number;
  skipped: number;
  cursor: string | undefined;
  complete: boolean;
}

/** What the status says was done to a matched delivery. */
function resent(spec: WebhookReplaySpec): string {
  return spec.targetWebhook === undefined ? "requeued" : `sent to webhook ${spec.targetWebhook}`;
}

type ReplayTarget = ResolvedCopyTarget;

/** The target webhook when it delivers; otherwise why not (the condition's message). */
function resolveTarget(
  deps: ReplayReconcilerDeps,
  namespace: string,
  name: string,
): Promise<ReplayTarget | string> {
  return resolveCopyTarget(deps.redis, namespace, name, deps.keys);
}

/**
 * A page of the Redis log. With a store, Redis lists the deliveries made since the archive horizon
 * only (and of those, the ones whose record has not expired since they were archived): the walk
 * ends there, and the rest is left to the dispatchers, who walk the store for what Redis could not
 * list (the Redis walk's counts handed over).
 */
async function walkRedisPage(
  deps: ReplayReconcilerDeps,
  namespace: string,
  spec: WebhookReplaySpec,
  replay: WebhookReplay,
  progress: Progress,
  target: ReplayTarget | undefined,
): Promise<Progress> {
  const keys = partitionOf(deps, namespace);
  const archived = await archivesToStore(deps.redis, keys);
  const horizon = archived ? await archiveHorizon(deps) : 0;
  // a new generation starts: the dispatchers stop walking the store for an older one
  if (archived && progress.cursor === undefined)
    await cancelArchiveReplays(deps.redis, keys, namespace, replay.metadata.name ?? "", replayToken(replay));
  const step = await replayPage(deps, namespace, spec, replay, progress, target, horizon);
  const next: Progress = {
    ...progress,
    matched: progress.matched + step.matched,
    requeued: progress.requeued + step.requeued,
    skipped: progress.skipped + step.skipped,
    cursor: step.cursor,
    complete: step.complete,
  };
  if (!next.complete || !archived) return next;
  await requestArchiveReplay(
    deps.redis,
    keys,
    storeRequest(namespace, spec, replay, progress, horizon),
    next,
  );
  return { ...next, cursor: undefined, complete: false, source: "DurableStore" };
}

/** The dispatchers' walk of the store, as they report it (asked for again if the request is gone). */
async function followStoreWalk(
  deps: ReplayReconcilerDeps,
  namespace: string,
  spec: WebhookReplaySpec,
  replay: WebhookReplay,
  progress: Progress,
): Promise<Progress> {
  const keys = partitionOf(deps, namespace);
  // the store was turned off since: there is nothing more to walk
  if (!(await archivesToStore(deps.redis, keys))) return { ...progress, complete: true };
  const walked = await readArchiveReplayProgress(deps.redis, keys, replayToken(replay));
  if (walked === null) {
    // Redis lost the request: asked again (the token keeps what was sent from being sent twice)
    const horizon = await archiveHorizon(deps);
    await requestArchiveReplay(
      deps.redis,
      keys,
      storeRequest(namespace, spec, replay, progress, horizon),
      progress,
    );
    return progress;
  }
  const { matched, requeued, skipped, done } = walked;
  return { ...progress, matched, requeued, skipped, complete: done };
}

function storeRequest(
  namespace: string,
  spec: WebhookReplaySpec,
  replay: WebhookReplay,
  progress: Progress,
  horizon: number,
): ArchiveReplayRequest {
  const window = replayWindow(spec, replay, progress);
  return {
    namespace,
    replay: replay.metadata.name ?? "",
    token: replayToken(replay),
    from: window.from,
    to: window.to,
    horizon,
    phases: [...spec.phases],
    maxPerSecond: spec.maxPerSecond,
    ...(spec.webhook === undefined ? {} : { webhook: spec.webhook }),
    ...(spec.eventType === undefined ? {} : { eventType: spec.eventType }),
    ...(spec.targetWebhook === undefined ? {} : { targetWebhook: spec.targetWebhook }),
  };
}

/** epoch ms below which Redis's log indexes may be trimmed (the store lists those deliveries). */
async function archiveHorizon(deps: ReplayReconcilerDeps): Promise<number> {
  return Number((await deps.redis.get(deps.keys.archiveHorizon)) ?? 0);
}

/** One page of the log: select, requeue (or copy to the target), count; nothing created before `horizon`. */
async function replayPage(
  deps: ReplayReconcilerDeps,
  namespace: string,
  spec: WebhookReplaySpec,
  replay: WebhookReplay,
  progress: Progress,
  target: ReplayTarget | undefined,
  horizon: number,
): Promise<PageResult> {
  const spanned = replayWindow(spec, replay, progress);
  const window = { ...spanned, from: Math.max(spanned.from, horizon) };
  // one phase: its index may be the smaller one (FAILED); two: every delivery, phase checked here
  const phase = spec.phases.length === 1 ? spec.phases[0] : undefined;
  let cursor = progress.cursor;
  for (let pages = 0; ; pages++) {
    const page = await listDeliveries(
      deps.redis,
      {
        namespace,
        ...(spec.webhook === undefined ? {} : { webhook: spec.webhook }),
        ...(spec.eventType === undefined ? {} : { eventType: spec.eventType }),
        ...(phase === undefined ? {} : { phase }),
      },
      { limit: spec.maxPerSecond, ...(cursor === undefined ? {} : { cursor }) },
      partitionOf(deps, namespace),
    );
    const { selected, reachedStart } = selectDeliveries(page.items, window, spec.phases);
    cursor = page.nextCursor;
    const complete = reachedStart || cursor === undefined;
    if (selected.length === 0 && !complete && pages + 1 < MAX_SKIP_PAGES) continue;
    const requeued =
      target === undefined
        ? (await requeue(deps, namespace, selected, replayToken(replay), spec.phases)).filter(
            (o) => o === "requeued" || o === "already-honoured",
          ).length
        : await copyTo(deps, namespace, selected, replayToken(replay), target);
    return {
      matched: selected.length,
      requeued,
      skipped: selected.length - requeued,
      cursor,
      complete,
    };
  }
}

async function requeue(
  deps: ReplayReconcilerDeps,
  namespace: string,
  ids: readonly string[],
  token: string,
  phases: readonly RequeuablePhase[],
): Promise<RetryOutcome[]> {
  if (ids.length === 0) return [];
  // the dispatcher's retention and status stream cap (a requeue rewrites the record's expiry)
  const limits = await readRecordLimits(deps.redis, deps.keys);
  return requestRetries(deps.redis, ids, token, partitionOf(deps, namespace), limits, { namespace }, phases);
}

/**
 * Sends deliveries again to the target webhook as new deliveries of their events; returns how
 * many exist now (made by this call or by an earlier look at the same page). A delivery whose
 * record expired meanwhile, or of an event the target does not subscribe to, is skipped.
 */
async function copyTo(
  deps: ReplayReconcilerDeps,
  namespace: string,
  ids: readonly string[],
  token: string,
  target: ReplayTarget,
): Promise<number> {
  if (ids.length === 0) return 0;
  const keys = partitionOf(deps, namespace);
  const reads = await readDeliveries(deps.redis, ids, keys);
  const now = Date.now();
  const copies = ids.flatMap((id, i) => {
    const original = reads[i]?.view;
    // gone, another namespace's, of another event, or the target's own (a replay without
    // targetWebhook requeues those)
    const { header } = original ?? {};
    if (!original || header?.namespace !== namespace || header.eventType !== target.event) return [];
    if (header.webhook === target.name) return [];
    return [copyDelivery(id, original, target, token, now)];
  });
  const limits = await readRecordLimits(deps.redis, deps.keys);
  return (await addDeliveries(deps.redis, copies, limits, keys, now)).length;
}

/** The keys of the partition that holds `namespace`'s deliveries. */
function partitionOf(deps: Pick<ReplayReconcilerDeps, "keys" | "partitions">, namespace: string): Keyspace {
  return (deps.partitions ?? onePartition(deps.keys)).of(namespace);
}

export interface ReplayWindow {
  /** epoch ms, inclusive */
  from: number;
  /** epoch ms, inclusive */
  to: number;
}

/**
 * The replay's time range. Without `spec.to` it ends with the object's creation, which the API
 * server records to the second: the whole of that second is taken, or deliveries made in it
 * before the object was created (a `from` a few ms before them, say) would fall outside.
 */
export function replayWindow(
  spec: Pick<WebhookReplaySpec, "from" | "to">,
  replay: Pick<WebhookReplay, "metadata">,
  progress: { startedAt: string },
): ReplayWindow {
  if (spec.to !== undefined) return { from: Date.parse(spec.from), to: Date.parse(spec.to) };
  const created = replay.metadata.creationTimestamp;
  const to = created === undefined ? Date.parse(progress.startedAt) : Date.parse(created) + 999;
  return { from: Date.parse(spec.from), to };
}

/**
 * The deliveries of a page (newest first) the replay takes: created within the window, in one of
 * the phases. `reachedStart`: the page went past the window's start, so nothing older matters.
 */
export function selectDeliveries(
  items: readonly DeliverySummary[],
  window: ReplayWindow,
  phases: readonly string[],
): { selected: string[]; reachedStart: boolean } {
  const selected: string[] = [];
  for (const item of items) {
    const created = Date.parse(item.createdAt);
    if (created < window.from) return { selected, reachedStart: true };
    if (created > window.to) continue;
    if (phases.includes(item.phase)) selected.push(item.id);
  }
  return { selected, reachedStart: false };
}

function statusOf(progress: Progress, now: Date): Record<string, unknown> {
  return {
    matched: progress.matched,
    requeued: progress.requeued,
    skipped: progress.skipped,
    startedAt: progress.startedAt,
    // merge patch: null removes
    cursor: progress.complete ? null : (progress.cursor ?? null),
    completedAt: progress.complete ? now.toISOString() : null,
    source: progress.source,
  };
}

async function writeStatus(
  deps: ReplayReconcilerDeps,
  replay: WebhookReplay,
  generation: number,
  fields: Record<string, unknown>,
  verdict: ReadyVerdict,
): Promise<void> {
  const standing = REPLAY_STANDING[verdict.reason as keyof typeof ReplayReason];
  const { conditions } = standingConditions(replay.status?.conditions, verdict, standing, {
    generation,
    graceMs: 0,
    now: deps.now?.() ?? new Date(),
  });
  await deps.writes.patchStatus(WEBHOOK_REPLAYS, replay.metadata, {
    ...fields,
    observedGeneration: generation,
    conditions,
  });
}
