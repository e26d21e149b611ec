import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium } from "playwright-core";

// A real browser for tests: Debian's chromium (`make deps` installs it), driven by playwright-core
// (which downloads no browser of its own). Headless, and quiet on the network: without the
// background-networking flags Chromium keeps trying to reach Google's hosts, which a closed CI
// network refuses.

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const QUIET_FLAGS = [
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface TestBrowser {
  /** A fresh profile (its own session storage, cookies, cache) of the given size. */
  newContext(viewport: { width: number; height: number }): Promise<BrowserContext>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `no browser at ${CHROMIUM_PATH}: install Debian's chromium (make deps), or set CHROMIUM_PATH`,
    );
  }
  // Playwright starts it with a fresh, temporary profile (--user-data-dir) and removes it after
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    chromiumSandbox: false,
    args: QUIET_FLAGS,
    timeout: 30_000,
  });
  return {
    newContext: (viewport) => browser.newContext({ viewport, locale: "en-GB", timezoneId: "UTC" }),
    async close() {
      await browser.close();
    },
  };
}
