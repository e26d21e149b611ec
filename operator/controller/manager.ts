import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { createLogger } from "../logger.ts";
import { Controller, type ControllerOptions } from "./controller.ts";
import { EventRecorder } from "./events.ts";
import { Informer, type InformerOptions, type InformerSource, ListPageLimit } from "./informer.ts";
import { LeaderElector } from "./leader-election.ts";
import { gauge } from "./metrics.ts";

// Runs the operator process the way controller-runtime's manager does:
//  1. the metrics/health server, so probes answer from the first second;
//  2. the shared informers, on every replica (a standby's caches are warm at failover);
//  3. leader election; the leader starts the controllers (and other leader-only runnables);
//  4. SIGTERM: not ready, stop the controllers (in-flight reconciles drain), release the
//     Lease (a standby takes over at once), stop the informers, exit 0.
// A leader that loses its Lease aborts its in-flight reconciles at once (another replica
// may already lead) and, by default, exits non-zero without draining, as controller-runtime
// does (client-go's advice: a fresh process with fresh caches is the safest follower).

/** Anything the manager starts and stops: controllers, or e.g. a Redis stream consumer. */
export interface Runnable {
  readonly name: string;
  /**
   * Resolves once running (not when done). `leadership` (leader-only runnables) aborts the
   * moment this process stops leading: abandon in-flight work then, it is no longer ours.
   */
  start(leadership?: AbortSignal): Promise<void>;
  /** Resolves once stopped; in-flight work is finished or abandoned safely. */
  stop(): Promise<void>;
}

export interface ManagerOptions {
  kubeConfig: KubeConfig;
  /** Where all metrics go; a fresh Registry with Node's default metrics when absent. */
  registry?: Registry;
  logger?: Logger;
  /** The /metrics, /healthz, /readyz server; `false` for none. Default 0.0.0.0:8080. */
  server?: { host?: string; port?: number } | false;
  /** `false` runs the leader-only runnables right away (a single replica, or tests). */
  leaderElection?:
    | {
        namespace: string;
        name: string;
        /** Default `<hostname>_<uuid>`. */
        identity?: string;
        leaseDurationMs?: number;
        renewDeadlineMs?: number;
        retryPeriodMs?: number;
      }
    | false;
  /** How long `stop()` waits for runnables before giving up on them. Default 30 s. */
  gracefulShutdownMs?: number;
  /** Defaults for every informer made with `informer()`. */
  informerDefaults?: InformerOptions<KubernetesObject>;
  /** List pages the informers fetch and parse at once, all together (see ListPageLimit). Default 2. */
  listPageConcurrency?: number;
  /** process.exit, replaceable in tests. */
  exit?: (code: number) => void;
}

export class Manager {
  readonly kubeConfig: KubeConfig;
  readonly registry: Registry;
  readonly log: Logger;
  /** Identity in the Lease and `reportingInstance` of Events. */
  readonly identity: string;

  private readonly options: ManagerOptions;
  private readonly informers = new Map<string, Informer<KubernetesObject>>();
  private readonly listPages: ListPageLimit;
  private readonly leaderRunnables: Runnable[] = [];
  private elector: LeaderElector | undefined;
  private server: Server | undefined;
  private recorder: EventRecorder | undefined;
  private leaderRunnablesStarted = false;
  /** Aborted when this process stops leading (passed to the leader-only runnables). */
  private leadership: AbortController | undefined;
  /** Bumped whenever the leader-only runnables are stopped, to spot a start that lost a race with a stop. */
  private term = 0;
  private started = false;
  private stopping: Promise<void> | undefined;

  constructor(options: ManagerOptions) {
    this.options = options;
    this.kubeConfig = options.kubeConfig;
    this.log = options.logger ?? createLogger({ name: "operator" });
    const election = options.leaderElection || undefined;
    this.identity = election?.identity || `${hostname()}_${randomUUID()}`;
    this.listPages = new ListPageLimit(options.listPageConcurrency ?? 2);
    if (options.registry) {
      this.registry = options.registry;
    } else {
      this.registry = new Registry();
      collectDefaultMetrics({ register: this.registry });
    }
  }

  /**
   * The shared informer for `source` (one per resource, namespace and selectors, however
   * many controllers watch it). Informers run on every replica, leader or not.
   */
  informer<T extends KubernetesObject>(
    source: InformerSource,
    options: InformerOptions<T> = {},
  ): Informer<T> {
    const key = JSON.stringify([
      source.group,
      source.version,
      source.plural,
      source.namespace ?? "",
      source.labelSelector ?? "",
      source.fieldSelector ?? "",
    ]);
    let informer = this.informers.get(key);
    if (!informer) {
      informer = new Informer<KubernetesObject>(this.kubeConfig, source, {
        logger: this.log,
        listPages: this.listPages,
        ...this.options.informerDefaults,
        ...(options as InformerOptions<KubernetesObject>),
      });
      this.informers.set(key, informer);
      if (this.started) informer.start();
    }
    return informer as unknown as Informer<T>;
  }

  /** Creates a controller that runs only while this process leads, with the manager's metrics and logger. */
  controller<T extends KubernetesObject>(
    options: Omit<ControllerOptions<T>, "registry" | "logger">,
  ): Controller<T> {
    const controller = new Controller<T>({ ...options, registry: this.registry, logger: this.log });
    this.add(controller);
    return controller;
  }

  /** Adds a runnable; it runs on the leader only. */
  add(runnable: Runnable): void {
    if (this.started) throw new Error(`add ${runnable.name} before start()`);
    this.leaderRunnables.push(runnable);
  }

  /** An Event recorder reporting as this process (flushed on stop). */
  events(): EventRecorder {
    this.recorder ??= new EventRecorder(this.kubeConfig, {
      reportingInstance: this.identity,
      logger: this.log,
    });
    return this.recorder;
  }

  /** True while this process may run the leader-only runnables (always, without leader election). */
  isLeader(): boolean {
    if (!this.started) return false;
    return this.options.leaderElection ? (this.elector?.isLeader() ?? false) : true;
  }

  /** Ready: informers synced, and as leader, the controllers running; never while stopping. */
  ready(): boolean {
    if (!this.started || this.stopping) return false;
    for (const informer of this.informers.values()) if (!informer.hasSynced()) return false;
    return !this.isLeader() || this.leaderRunnablesStarted;
  }

  /** Alive unless the leader has failed to renew its Lease for far too long (a wedged process). */
  healthy(): boolean {
    return this.elector?.healthy() ?? true;
  }

  /** The server's address once started (port 0 picks a free one). */
  address(): AddressInfo | undefined {
    const address = this.server?.address();
    return address && typeof address === "object" ? address : undefined;
  }

  /** Starts everything; resolves once the server listens and the election has begun. */
  async start(): Promise<void> {
    if (this.started) throw new Error("manager already started");
    this.started = true;
    if (this.options.server !== false) await this.listen(this.options.server ?? {});
    for (const informer of this.informers.values()) informer.start();

    const election = this.options.leaderElection;
    if (!election) {
      await this.startLeaderRunnables();
      return;
    }
    this.campaign(election);
  }

  /**
   * Graceful stop: not ready; leader-only runnables stop (in-flight work drains); the
   * Lease is released; then the rest. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** SIGTERM/SIGINT → `stop()` → exit 0 (exit 1 if stopping fails or a second signal comes). */
  handleSignals(): void {
    const exit = this.options.exit ?? ((code: number) => process.exit(code));
    const onSignal = (signal: NodeJS.Signals): void => {
      if (this.stopping) {
        this.log.warn({ signal }, "second signal, exiting now");
        exit(1);
        return;
      }
      this.log.info({ signal }, "shutting down");
      const deadline = setTimeout(
        () => {
          this.log.error("graceful shutdown took too long, exiting");
          exit(1);
        },
        (this.options.gracefulShutdownMs ?? 30_000) + 5_000,
      );
      deadline.unref();
      this.stop().then(
        () => exit(0),
        (err: unknown) => {
          this.log.error({ err }, "shutdown failed");
          exit(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  }

  private campaign(election: Exclude<ManagerOptions["leaderElection"], false | undefined>): void {
    // client-go's name, which dashboards and the chart's NoOperatorLeader alert use.
    const leading = gauge(
      this.registry,
      "leader_election_master_status",
      "1 while this replica holds the leader Lease, else 0.",
      ["name"],
    );
    leading.set({ name: election.name }, 0);
    const elector = new LeaderElector(this.kubeConfig, {
      namespace: election.namespace,
      name: election.name,
      identity: this.identity,
      ...(election.leaseDurationMs ? { leaseDurationMs: election.leaseDurationMs } : {}),
      ...(election.renewDeadlineMs ? { renewDeadlineMs: election.renewDeadlineMs } : {}),
      ...(election.retryPeriodMs ? { retryPeriodMs: election.retryPeriodMs } : {}),
      logger: this.log,
      onStartedLeading: () => {
        leading.set({ name: election.name }, 1);
        void this.startLeaderRunnables();
      },
      onStoppedLeading: (reason) => {
        leading.set({ name: election.name }, 0);
        if (reason === "lost") this.onLeaseLost();
      },
    });
    this.elector = elector;
    void elector.run();
  }

  /**
   * After losing the Lease: the leadership signal aborts (in-flight reconciles see it) and the
   * process exits with code 1 at once, without draining: another replica may lead already.
   */
  private onLeaseLost(): void {
    this.log.error("lost the leader lease: stopping the controllers");
    this.leadership?.abort();
    if (this.stopping) return;
    this.stopLeaderRunnables().catch(() => undefined);
    (this.options.exit ?? ((code: number) => process.exit(code)))(1);
  }

  private async startLeaderRunnables(): Promise<void> {
    if (this.stopping) return;
    const term = this.term;
    const leadership = new AbortController();
    this.leadership = leadership;
    await Promise.all(this.leaderRunnables.map((r) => this.startRunnable(r, leadership.signal)));
    if (term !== this.term) return; // leadership ended while starting
    this.leaderRunnablesStarted = true;
    this.log.info({ runnables: this.leaderRunnables.map((r) => r.name) }, "leading: controllers started");
  }

  private async stopLeaderRunnables(): Promise<void> {
    this.term++;
    this.leadership?.abort();
    this.leaderRunnablesStarted = false;
    await this.stopAll(this.leaderRunnables);
  }

  private async startRunnable(runnable: Runnable, leadership?: AbortSignal): Promise<void> {
    try {
      await runnable.start(leadership);
    } catch (err) {
      this.log.error({ err, runnable: runnable.name }, "runnable failed to start");
    }
  }

  private async stopAll(runnables: Runnable[]): Promise<void> {
    const timeoutMs = this.options.gracefulShutdownMs ?? 30_000;
    await Promise.all(
      runnables.map(async (runnable) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), timeoutMs);
        });
        try {
          const outcome = await Promise.race([runnable.stop().then(() => "stopped" as const), timeout]);
          if (outcome === "timeout")
            this.log.warn({ runnable: runnable.name }, "runnable did not stop in time");
        } catch (err) {
          this.log.error({ err, runnable: runnable.name }, "runnable failed to stop");
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  private async shutdown(): Promise<void> {
    await this.stopLeaderRunnables();
    await this.elector?.stop(); // releases the Lease: a standby takes over now
    await this.recorder?.stop();
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.log.info("stopped");
  }

  private async listen(options: { host?: string; port?: number }): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405).end();
        return;
      }
      if (path === "/metrics") {
        this.registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
        return;
      }
      const probe = path === "/healthz" ? this.healthy() : path === "/readyz" ? this.ready() : undefined;
      if (probe === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(probe ? 200 : 503, { "content-type": "text/plain" }).end(probe ? "ok\n" : "not ok\n");
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 8080, options.host ?? "0.0.0.0", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.log.info({ address: this.address() }, "metrics and health server listening");
  }
}
