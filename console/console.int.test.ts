import { mkdir } from "node:fs/promises";
import { Redis } from "ioredis";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { deliveryId } from "../contract/delivery-id.ts";
import { tokenDigest } from "../contract/routing-config.ts";
import { type Dispatcher, startDispatcher } from "../dispatcher/dispatcher.ts";
import { launchBrowser, type TestBrowser } from "../test/support/browser.ts";
import {
  ADMIN_TOKEN,
  api,
  eventually,
  INGEST_TOKEN,
  routeNamespaces,
  testRouting,
  testSettings,
} from "../test/support/fixtures.ts";
import { type Receiver, startReceiver } from "../test/support/receiver.ts";
import { buildConsole } from "./build.ts";

// The console in a real browser (Debian's chromium, playwright-core) against a real dispatcher,
// Redis and receiver: the on-call journey from a token to a FAILED delivery retried and SENT,
// and a namespace's own token kept to its namespace. UPDATE_SCREENSHOTS=1 writes the README's
// screenshots (docs/console-*.png).

const ACME_LOG_TOKEN = "acme-event-log-token-0123456789abcdef";
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === "1" ? new URL("../docs/", import.meta.url) : undefined;

let redis: Redis;
let receiver: Receiver;
let dispatcher: Dispatcher;
let browser: TestBrowser;
/** The CRM's endpoint answers 500 until it is fixed, then 200 after a moment (so QUEUED shows). */
let crmFixed = false;
const failedJob = deliveryId("acme", "job-1042", "crm-jobs");
const otherFailedJob = deliveryId("acme", "job-1043", "crm-jobs");
const globexDelivery = deliveryId("globex", "appt-77", "scheduling");

beforeAll(async () => {
  await buildConsole();
  redis = new Redis(inject("redisUrl"));
  receiver = await startReceiver();
  receiver.on("/crm", () =>
    crmFixed
      ? { kind: "respond", status: 200, body: '{"received":true}', delayMs: 1500 }
      : { kind: "respond", status: 500, body: '{"error":"database unavailable"}' },
  );
  dispatcher = await startDispatcher(testSettings(inject("redisUrl")));
  const routing = testRouting(
    "acme",
    [
      { name: "crm-jobs", event: "job.created", url: receiver.url("/crm") },
      { name: "billing", event: "payment.received", url: receiver.url("/billing") },
    ],
    { eventLogTokenDigests: [tokenDigest(ACME_LOG_TOKEN)] },
  );
  // FAILED deliveries to /crm are the point: the circuit breaker (on by default) would hold them QUEUED
  routing.delivery = { ...routing.delivery!, timeoutMs: 5_000, circuitBreaker: { consecutiveFailures: 0 } };
  await routeNamespaces(redis, dispatcher, [
    routing,
    testRouting("globex", [
      { name: "scheduling", event: "appointment.completed", url: receiver.url("/sched") },
    ]),
  ]);
  const events = [
    { type: "payment.received", namespace: "acme", id: "pay-311", data: { paymentId: "P-311", amount: 120 } },
    { type: "appointment.completed", namespace: "globex", id: "appt-77", data: { appointmentId: "A-77" } },
    { type: "job.created", namespace: "acme", id: "job-1042", data: { jobId: "J-1042", customerId: "C-88" } },
    { type: "payment.received", namespace: "acme", id: "pay-312", data: { paymentId: "P-312", amount: 45 } },
    { type: "job.created", namespace: "acme", id: "job-1043", data: { jobId: "J-1043", customerId: "C-91" } },
  ];
  for (const event of events) {
    // one at a time: the list's order (newest first) is the order of publication
    expect((await api(dispatcher.url, "POST", "/v1/events", event, INGEST_TOKEN)).status).toBe(202);
  }
  await eventually(async () => {
    const page = await api(dispatcher.url, "GET", "/v1/deliveries?phase=FAILED");
    return (page.body as { items: unknown[] }).items.length === 2 ? true : undefined;
  });
  await eventually(async () => {
    const page = await api(dispatcher.url, "GET", "/v1/deliveries?phase=SENT");
    return (page.body as { items: unknown[] }).items.length === 3 ? true : undefined;
  });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await dispatcher?.stop();
  await receiver?.close();
  redis?.disconnect();
});

async function screenshot(page: Page, name: string): Promise<void> {
  if (SCREENSHOTS === undefined) return;
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.mouse.move(0, 0); // no row highlighted by where the last click happened
  await page.screenshot({ path: new URL(`console-${name}.png`, SCREENSHOTS).pathname, fullPage: true });
}

/** The text of the table's rows, one string per row. */
async function rows(page: Page): Promise<string[]> {
  return page.locator("table.deliveries tbody tr").allTextContents();
}

describe("the event log console", () => {
  it("takes a token, filters FAILED, shows a delivery's payload and attempts, and retries it to SENT", async () => {
    const started = performance.now();
    const context = await browser.newContext({ width: 1280, height: 800 });
    const page = await context.newPage();

    await page.goto(`${dispatcher.url}/console`);
    expect(new URL(page.url()).pathname).toBe("/console/");
    await page.getByLabel("Token").fill(ADMIN_TOKEN);
    await page.getByRole("button", { name: "Open the event log" }).click();
    await page.locator("table.deliveries tbody tr").nth(4).waitFor();
    expect(await rows(page)).toHaveLength(5);
    expect((await rows(page))[0]).toContain("job.created");
    expect(await page.evaluate("sessionStorage.length")).toBe(1);
    await screenshot(page, "list");

    // filter FAILED: the two CRM jobs, newest first, the phase said in words
    await page.getByLabel("Phase").selectOption("FAILED");
    await page.waitForURL(/phase=FAILED/);
    await eventually(async () => ((await rows(page)).length === 2 ? true : undefined));
    const failed = await rows(page);
    expect(failed[0]).toContain(otherFailedJob);
    expect(failed[1]).toContain(failedJob);
    expect(failed.every((row) => row.includes("FAILED"))).toBe(true);

    // the keyboard: j moves to the first row, j again to the second, Enter opens it
    await page.keyboard.press("j");
    await page.keyboard.press("j");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: `Delivery ${failedJob}` }).waitFor();
    const payload = JSON.parse((await page.locator("pre.payload").textContent()) ?? "null");
    expect(payload).toMatchObject({ id: "job-1042", type: "job.created", data: { jobId: "J-1042" } });
    expect(await page.locator("pre.payload").textContent()).toContain('\n  "type": "job.created"');
    const attempts = page.locator("table.attempts tbody tr");
    expect(await attempts.count()).toBe(3);
    expect(await attempts.first().textContent()).toContain("500");
    expect(await attempts.first().textContent()).toContain("database unavailable");
    const headers = (await page.locator("table.headers").textContent()) ?? "";
    expect(await page.locator("table.headers tr", { hasText: "webhook-id" }).textContent()).toBe(
      `webhook-id${failedJob}`,
    );
    expect(headers).toContain("webhook-signature");
    expect(headers).not.toMatch(/v1,[A-Za-z0-9+/=]{20,}/);
    expect(await page.locator(".commands pre").textContent()).toContain(
      `kubectl get webhookevent ${failedJob} -n acme -o jsonpath='{.spec.payload}'`,
    );
    await screenshot(page, "detail");
    // Copy payload: the exact bytes sent, not the indented text shown
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: dispatcher.url });
    await page.getByRole("button", { name: "Copy payload" }).click();
    await page.getByRole("button", { name: "Copied" }).waitFor();
    const sent = await api(dispatcher.url, "GET", `/v1/deliveries/${failedJob}`);
    expect(await page.evaluate("navigator.clipboard.readText()")).toBe(
      (sent.body as { payload: string }).payload,
    );

    // fixed receiver, Retry: QUEUED while the 4th attempt is on its way, then SENT
    crmFixed = true;
    await page.getByRole("button", { name: "Retry", exact: true }).click();
    await page.locator(".detail-head .phase", { hasText: "QUEUED" }).waitFor({ timeout: 5_000 });
    await page.locator(".detail-head .phase", { hasText: "SENT" }).waitFor({ timeout: 10_000 });
    await eventually(async () => ((await attempts.count()) === 4 ? true : undefined));
    expect(await page.getByRole("button", { name: "Retry", exact: true }).count()).toBe(0);

    // Escape: back to the FAILED list, where the other job is left; retry it in bulk
    await page.keyboard.press("Escape");
    await page.waitForURL(
      (url) => !url.searchParams.has("delivery") && url.searchParams.get("phase") === "FAILED",
    );
    await eventually(async () => ((await rows(page)).length === 1 ? true : undefined));
    await page.getByRole("button", { name: "Retry all FAILED…" }).click();
    const dialog = page.getByRole("dialog");
    expect(await dialog.textContent()).toContain("every namespace this token may read");
    await dialog.getByRole("button", { name: "Retry FAILED deliveries" }).click();
    await page.getByText("Requeued 1 FAILED delivery.").waitFor();
    await page.getByText("No deliveries match.").waitFor({ timeout: 10_000 });
    await eventually(async () => {
      const record = await api(dispatcher.url, "GET", `/v1/deliveries/${otherFailedJob}`);
      return (record.body as { phase: string }).phase === "SENT" ? true : undefined;
    });

    await context.close();
    console.log(`console journey: ${Math.round(performance.now() - started)} ms`);
  }, 60_000);

  it("keeps a namespace's event log token to its namespace", async () => {
    const context = await browser.newContext({ width: 1280, height: 800 });
    const page = await context.newPage();
    // the address `make dev` prints: the token in the fragment, taken into session storage
    await page.goto(`${dispatcher.url}/console/#token=${ACME_LOG_TOKEN}`);
    await page.locator("table.deliveries tbody tr").nth(3).waitFor();
    expect(page.url()).not.toContain(ACME_LOG_TOKEN);
    const visible = await rows(page);
    expect(visible).toHaveLength(4);
    expect(visible.every((row) => row.includes("acme") && !row.includes("globex"))).toBe(true);

    await page.getByLabel("Namespace").fill("globex");
    await page.getByLabel("Namespace").press("Enter");
    await page.getByRole("alert").getByText("NAMESPACE_FORBIDDEN").waitFor();

    await page.goto(`${dispatcher.url}/console/?delivery=${globexDelivery}`);
    await page.getByRole("alert").getByText("DELIVERY_NOT_FOUND").waitFor();
    await context.close();
  }, 30_000);

  it("pages through the log with the API's cursors", async () => {
    const context = await browser.newContext({ width: 1280, height: 800 });
    const page = await context.newPage();
    await page.goto(`${dispatcher.url}/console/?limit=2#token=${ADMIN_TOKEN}`);
    const older = page.getByRole("button", { name: "Older →" });
    const seen: string[] = [];
    for (const [number, count] of [
      [1, 2],
      [2, 2],
      [3, 1],
    ] as const) {
      await page.getByText(`Page ${number}`, { exact: true }).waitFor();
      await eventually(async () => ((await rows(page)).length === count ? true : undefined));
      seen.push(...(await page.locator("a.row-link").allTextContents()));
      if (number < 3) await older.click();
    }
    expect(await older.isDisabled()).toBe(true);
    expect(new Set(seen).size).toBe(5);
    await page.getByRole("button", { name: "← Newer" }).click();
    await page.getByText("Page 2", { exact: true }).waitFor();
    await context.close();
  }, 30_000);

  it("fits a phone's width", async () => {
    const context = await browser.newContext({ width: 390, height: 844 });
    const page = await context.newPage();
    await page.goto(`${dispatcher.url}/console/#token=${ADMIN_TOKEN}`);
    await page.locator("table.deliveries tbody tr").nth(4).waitFor();
    const overflow = Number(await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"));
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, "phone");
    await context.close();
  }, 30_000);
});
