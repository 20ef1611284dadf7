/// <reference lib="dom" />
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { serviceMissing } from "@atomkit/testkit";
import { type Browser, chromium, type Page } from "playwright-core";

// Reports are proven in the real browser people open them in: Debian's Chromium, driven by
// playwright-core (no browser download). The flags keep Chromium from calling out on its own (update
// checks, sync…): a request seen by a test is then the report's.

export const CHROMIUM = process.env.ATOMKIT_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = resolve(__dirname, "../test-artifacts");

export const noChromium = () =>
  serviceMissing(
    "Chromium",
    existsSync(CHROMIUM),
    "apt-get install -y chromium (npm test installs it as root)",
  );

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
    ],
  });
}

export interface Opened {
  page: Page;
  /** Every request the page made but the report file itself. */
  requests: string[];
  /** alert/confirm/prompt dialogs opened (a script ran). */
  dialogs: string[];
  /** Uncaught page errors and console errors. */
  errors: string[];
  /** Text of the whole page as a person sees it. */
  text: string;
  close(): Promise<void>;
}

/** Opens a report file in a fresh context; requests to anything else are recorded and refused. */
export async function openReport(
  browser: Browser,
  file: string,
  viewport = { width: 1300, height: 900 },
): Promise<Opened> {
  const context = await browser.newContext({ viewport, javaScriptEnabled: true });
  const page = await context.newPage();
  const self = pathToFileURL(file).href;
  const requests: string[] = [];
  const dialogs: string[] = [];
  const errors: string[] = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url === self) return route.continue();
    requests.push(url);
    return route.abort();
  });
  page.on("request", (r) => {
    if (r.url() !== self && !requests.includes(r.url())) requests.push(r.url());
  });
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  await page.goto(self, { waitUntil: "load" });
  const text = await page.evaluate(() => document.body.innerText);
  return { page, requests, dialogs, errors, text, close: () => context.close() };
}

/** A screenshot (the whole page, or what the first screen shows) kept as a test artifact. */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}
