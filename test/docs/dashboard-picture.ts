// `npm run docs:dashboard`: docs/dashboard.png, a picture of the chart's Grafana dashboard drawn
// from its own queries against a real Prometheus (Debian's /usr/bin/prometheus) that scrapes a
// real dispatcher and operator (the `make dev` stack: local control plane, Redis, PostgreSQL for
// the durable log store) while generated traffic runs through them: healthy, flaky, slow and
// failing receivers, a burst, rejected events. Grafana is not involved: test/docs/page/dashboard-page.ts
// draws the panels with uPlot in Chromium. Minutes; not part of the test suite.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { SECRET_USAGE_LABEL, SECRET_USAGE_VALUE } from "../../operator/api/v1alpha1/index.ts";
import { renderChart } from "../chart/helm.ts";
import { scrapedJobs } from "../chart/prometheus.ts";
import { resolveAssets, startControlPlane } from "../env/control-plane.ts";
import { type DevStack, startDevStack } from "../env/dev-stack.ts";
import { freePort } from "../env/ports.ts";
import { createDatabase, startPostgres } from "../env/postgres.ts";
import { startProcess } from "../env/process.ts";
import { startRedis } from "../env/redis.ts";
import { launchBrowser } from "../support/browser.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type Dashboard, type PageConfig, type PageResult, rateIntervalSeconds } from "./dashboard-model.ts";

const repo = join(import.meta.dirname, "..", "..");
const OUTPUT = join(repo, "docs", "dashboard.png");
const DASHBOARD = join(repo, "charts", "dataforce-webhooks", "files", "grafana-dashboard.json");
const PROMETHEUS = process.env.PROMETHEUS_BIN ?? "/usr/bin/prometheus";
// the installation the dashboard's variables pick, as the chart's ServiceMonitors label it
const RELEASE = "dataforce-webhooks";
const RELEASE_NAMESPACE = "dataforce-system";
const SCRAPE_SECONDS = 1;
const TRAFFIC_SECONDS = Number(process.env.DASHBOARD_TRAFFIC_SECONDS ?? 150);
const SHOP = "shop";
const WIDTH = 1600;

const startedAt = Date.now();
const log = (message: string) => console.log(`[${((Date.now() - startedAt) / 1000).toFixed(0)}s] ${message}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const cleanups: Array<() => Promise<unknown>> = [];

async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse())
    await cleanup().catch((error: unknown) => console.error(`cleanup: ${String(error)}`));
}

for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    process.exitCode = 130;
    void cleanUp().finally(() => process.exit(130));
  });

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
log(process.exitCode ? "failed" : `done: ${OUTPUT}`);

async function main(): Promise<void> {
  const dashboard = JSON.parse(await readFile(DASHBOARD, "utf8")) as Dashboard;
  const jobs = scrapedJobs(
    await renderChart({
      namespace: RELEASE_NAMESPACE,
      releaseName: RELEASE,
      set: { "metrics.serviceMonitor.enabled": "true" },
    }),
  );
  const dispatcherJob = jobs.get("dispatcher") ?? "";
  const operatorJob = jobs.get("operator") ?? "";

  log("starting the control plane, Redis and PostgreSQL ...");
  const assetsDir = await resolveAssets();
  // all settled before going on: one failing to start must not leave the others unstopped
  const started = await Promise.allSettled([startControlPlane({ assetsDir }), startRedis(), startPostgres()]);
  const [controlPlane, redis, postgres] = started;
  if (controlPlane.status === "fulfilled") cleanups.push(() => controlPlane.value.stop());
  if (redis.status === "fulfilled") cleanups.push(() => redis.value.stop());
  if (postgres.status === "fulfilled") cleanups.push(() => postgres.value.destroy());
  if (controlPlane.status === "rejected") throw controlPlane.reason;
  if (redis.status === "rejected") throw redis.reason;
  if (postgres.status === "rejected") throw postgres.reason;
  const postgresUrl = await createDatabase(postgres.value, "dashboard");

  log("starting the dispatcher and the operator ...");
  // the processes' logs: removed after a run that worked, kept after one that failed
  const logDir = await mkdtemp(join(tmpdir(), "dfw-dashboard-logs-"));
  cleanups.push(async () => {
    if (process.exitCode) console.error(`logs of the dispatcher and the operator: ${logDir}`);
    else await rm(logDir, { recursive: true, force: true });
  });
  const stack = await startDevStack({
    logDir,
    kubeconfig: controlPlane.value.kubeconfigPath,
    redisUrl: redis.value.url,
    kubectlBin: join(assetsDir, "kubectl"),
    dispatcherEnv: {
      DISPATCHER_POSTGRES_URL: postgresUrl,
      // deliveries move to PostgreSQL within the picture's minutes, not after an hour
      DISPATCHER_ARCHIVE_HOT_WINDOW_MS: "20000",
      DISPATCHER_ARCHIVE_INTERVAL_MS: "2000",
      DISPATCHER_LOG_LEVEL: "warn",
    },
  });
  cleanups.push(() => stack.stop());
  const receivers = await shopAccount(stack);

  const prometheus = await startPrometheus(stack, dispatcherJob, operatorJob);
  cleanups.push(() => prometheus.stop());

  // a few idle scrapes before the traffic, as a baseline
  const start = Math.floor(Date.now() / 1000);
  await sleep(5_000);
  log(`traffic for ${TRAFFIC_SECONDS}s ...`);
  await traffic(stack, receivers);
  // the range ends with the traffic (stat panels show its last values, not an idle minute), and
  // Prometheus has scraped its last second before the queries run
  const end = Math.floor(Date.now() / 1000);
  await sleep(3_000);

  log("rendering ...");
  const config: PageConfig = {
    dashboard,
    variables: {
      namespace: RELEASE_NAMESPACE,
      dispatcher: dispatcherJob,
      operator: operatorJob,
      __rate_interval: `${rateIntervalSeconds(SCRAPE_SECONDS)}s`,
    },
    start,
    end,
    step: SCRAPE_SECONDS,
    width: WIDTH,
    note:
      "Drawn by npm run docs:dashboard from this dashboard's JSON and queries, against a real Prometheus " +
      "scraping a dispatcher and an operator under generated traffic; not a Grafana screenshot.",
  };
  const server = await servePage(config, prometheus.url);
  cleanups.push(() => new Promise((resolve) => server.server.close(resolve)));
  await screenshot(server.url);
  const { size } = await stat(OUTPUT);
  log(`${OUTPUT}: ${(size / 1024).toFixed(0)} KiB`);
}

/**
 * A second account, `shop`, with fast retries and webhooks behind receivers of every temper, each
 * its own origin (the dispatcher bounds concurrency per origin: one slow receiver must not hold
 * the others' slots).
 */
async function shopAccount(stack: DevStack): Promise<Receiver[]> {
  const random = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));
  const receivers: Record<string, Receiver> = {};
  for (const name of ["crm", "warehouse", "billing", "analytics", "legacy"]) {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    receivers[name] = receiver;
  }
  const { crm, warehouse, billing, analytics, legacy } = receivers;
  if (!crm || !warehouse || !billing || !analytics || !legacy) throw new Error("receivers missing");
  crm.on("*", () => ({ kind: "respond", status: 200, delayMs: random(10, 60) }));
  warehouse.on("*", () => ({ kind: "respond", status: 200, delayMs: random(5, 30) }));
  // one attempt in four fails: retried, and now and then FAILED after its three attempts
  billing.on("*", () =>
    Math.random() < 0.25 ? { kind: "respond", status: 500 } : { kind: "respond", status: 200, delayMs: 20 },
  );
  analytics.on("*", () => ({ kind: "respond", status: 200, delayMs: random(300, 1_500) }));
  // down for a while in the middle of the run: deliveries fail, the circuit opens
  const outage = { from: Date.now() + TRAFFIC_SECONDS * 300, to: Date.now() + TRAFFIC_SECONDS * 600 };
  legacy.on("*", () =>
    Date.now() > outage.from && Date.now() < outage.to
      ? { kind: "respond", status: 503 }
      : { kind: "respond", status: 200, delayMs: 40 },
  );
  const secret = `whsec_${randomBytes(24).toString("base64")}`;
  const webhook = (name: string, spec: Record<string, unknown>) => ({
    apiVersion: "webhooks.dataforce.io/v1alpha1",
    kind: "Webhook",
    metadata: { name, namespace: SHOP },
    spec: { event: "payment.received", url: receivers[name]?.url("/hooks"), ...spec },
  });
  const account = {
    apiVersion: "v1",
    kind: "List",
    items: [
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "signing", namespace: SHOP, labels: { [SECRET_USAGE_LABEL]: SECRET_USAGE_VALUE } },
        stringData: { secret },
      },
      {
        apiVersion: "webhooks.dataforce.io/v1alpha1",
        kind: "WebhookIntegration",
        metadata: { name: "default", namespace: SHOP },
        spec: {
          enabled: true,
          signingSecretRef: { name: "signing", key: "secret" },
          destinationPolicy: { allowPlainHTTP: true },
          // thousands of deliveries: only the FAILED ones become WebhookEvent objects
          eventLog: { mirror: "FailedOnly" },
          delivery: {
            maxAttempts: 3,
            timeout: "3s",
            backoff: { initialDelay: "2s", maxDelay: "10s", multiplier: 3 },
            circuitBreaker: { consecutiveFailures: 10, cooldown: "5s", maxCooldown: "20s" },
          },
        },
      },
      webhook("crm", {}),
      webhook("billing", {}),
      webhook("analytics", {}),
      webhook("legacy", {}),
      webhook("warehouse", { ordering: "Ordered", filter: "event.data.amount > 50.0" }),
    ],
  };
  await stack.kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: SHOP } }),
  );
  await stack.kubectl(["apply", "-f", "-"], JSON.stringify(account));
  await stack.kubectl(["wait", "--for=condition=Ready", "--timeout=60s", "-n", SHOP, "webhooks", "--all"]);
  // dispatchers pick up the routing on its notification, or at the latest after their poll
  await sleep(1_500);
  return Object.values(receivers);
}

async function post(stack: DevStack, path: string, body: unknown): Promise<number> {
  const response = await fetch(`${stack.dispatcherUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.ingestToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

function payment(): Record<string, unknown> {
  const amount = Math.round(Math.random() * 20_000) / 100;
  return {
    type: "payment.received",
    namespace: SHOP,
    data: { paymentId: `pay_${randomBytes(5).toString("hex")}`, amount, currency: "EUR" },
  };
}

/**
 * TRAFFIC_SECONDS of events: payments at a rate that swells and ebbs, appointments for the demo
 * account, an invalid event now and then and a burst of 800 payments a third of the way in.
 */
async function traffic(stack: DevStack, receivers: readonly Receiver[]): Promise<void> {
  const end = Date.now() + TRAFFIC_SECONDS * 1000;
  const burstAt = Date.now() + TRAFFIC_SECONDS * 333;
  let burst = false;
  let tick = 0;
  const inFlight = new Set<Promise<unknown>>();
  const send = (path: string, body: unknown) => {
    const p = post(stack, path, body).catch(() => 0);
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  while (Date.now() < end) {
    const progress = 1 - (end - Date.now()) / (TRAFFIC_SECONDS * 1000);
    const perSecond = 6 + 8 * Math.sin(progress * Math.PI * 2) ** 2;
    for (let i = 0; i < Math.round(perSecond / 4); i++) send("/v1/events", payment());
    if (tick % 2 === 0)
      send("/v1/events", {
        type: "appointment.completed",
        namespace: stack.namespace,
        data: { appointmentId: `apt_${tick}` },
      });
    if (tick % 12 === 0) send("/v1/events", { type: "payment.received", namespace: SHOP }); // no data
    if (!burst && Date.now() > burstAt) {
      burst = true;
      log("burst: 800 payments");
      for (let i = 0; i < 8; i++)
        send("/v1/events/batch", { events: Array.from({ length: 100 }, () => payment()) });
    }
    tick++;
    await sleep(250);
  }
  await Promise.all(inFlight);
  log(`receivers: ${receivers.reduce((n, r) => n + r.requests().length, 0)} requests`);
}

interface RunningPrometheus {
  url: string;
  stop(): Promise<void>;
}

/**
 * Prometheus scraping both processes every second, their series labelled as through the chart's
 * ServiceMonitors: job = the metrics Service's name, namespace = the release's, pod = the pod's.
 */
async function startPrometheus(
  stack: DevStack,
  dispatcherJob: string,
  operatorJob: string,
): Promise<RunningPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), "dfw-prometheus-"));
  const target = (job: string, url: string, container: string, pod: string) => ({
    job_name: job,
    scrape_interval: `${SCRAPE_SECONDS}s`,
    scrape_timeout: `${SCRAPE_SECONDS}s`,
    static_configs: [
      {
        targets: [new URL(url).host],
        labels: { namespace: RELEASE_NAMESPACE, pod, container, service: job, endpoint: "metrics" },
      },
    ],
  });
  const config = {
    global: { scrape_interval: `${SCRAPE_SECONDS}s`, evaluation_interval: `${SCRAPE_SECONDS}s` },
    scrape_configs: [
      target(dispatcherJob, stack.dispatcherUrl, "dispatcher", `${RELEASE}-dispatcher-7f9c5d-x2k4p`),
      target(operatorJob, stack.operatorUrl, "operator", `${RELEASE}-operator-5b8d7c-q7m2n`),
    ],
  };
  // JSON is YAML
  await writeFile(join(dir, "prometheus.yml"), JSON.stringify(config, null, 2));
  const port = await freePort();
  const proc = startProcess(
    "prometheus",
    PROMETHEUS,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { logFile: join(dir, "prometheus.log"), cwd: dir },
  );
  const stop = async () => {
    await proc.stop(10_000);
    await rm(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      const output = await readFile(join(dir, "prometheus.log"), "utf8").catch(() => "");
      await stop();
      throw new Error(`${PROMETHEUS} not ready after 30s:\n${output.slice(-2_000)}`);
    }
    await sleep(250);
  }
  log(`prometheus on ${url}, scraping ${dispatcherJob} and ${operatorJob}`);
  return { url, stop };
}

/** The page: HTML, uPlot's CSS and the bundled page script inline; /api/v1/ passed to Prometheus. */
async function servePage(
  config: PageConfig,
  prometheusUrl: string,
): Promise<{ url: string; server: Server }> {
  const bundle = await build({
    entryPoints: [join(import.meta.dirname, "page", "dashboard-page.ts")],
    bundle: true,
    format: "iife",
    write: false,
    target: "es2022",
    minify: true,
  });
  const script = bundle.outputFiles[0]?.text ?? "";
  const uplotCss = await readFile(join(repo, "node_modules", "uplot", "dist", "uPlot.min.css"), "utf8");
  const css = await readFile(join(import.meta.dirname, "page", "dashboard-page.css"), "utf8");
  // `<` escaped: the JSON sits inside a script element
  const data = JSON.stringify(config).replace(/</g, "\\u003c");
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${config.dashboard.title}</title>
<style>${uplotCss}\n${css}</style></head><body style="width:${config.width}px">
<script>window.dashboardConfig = ${data};</script><script>${script}</script></body></html>`;
  const server = createServer((req, res) => {
    if (req.url?.startsWith("/api/v1/")) {
      fetch(`${prometheusUrl}${req.url}`)
        .then(async (r) => {
          res.writeHead(r.status, { "content-type": "application/json" });
          res.end(Buffer.from(await r.arrayBuffer()));
        })
        .catch((error: unknown) => {
          res.writeHead(502);
          res.end(String(error));
        });
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, server };
}

async function screenshot(url: string): Promise<void> {
  const browser = await launchBrowser();
  cleanups.push(() => browser.close());
  const context = await browser.newContext({ width: WIDTH, height: 900 });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") console.error(`page: ${message.text()}`);
  });
  await page.goto(url);
  // run in the page (serialized, so self-contained); its window seen from Node, without DOM types
  const reported = () => (globalThis as { dashboardResult?: PageResult }).dashboardResult;
  await page.waitForFunction(reported, undefined, { timeout: 60_000 });
  const result = await page.evaluate(reported);
  for (const error of result?.errors ?? []) console.error(`query error: ${error}`);
  if ((result?.empty.length ?? 0) > 0) log(`panels without data: ${result?.empty.join(", ")}`);
  await page.screenshot({ path: OUTPUT, fullPage: true });
  await context.close();
}
