// Drives the AuthKit flow in headless Chromium and prints what happened as JSON.
// Usage: node browser.mjs <app URL> <iframe origin> <authorization or ""> <expect: connected|error> [screenshot.png]
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [appURL, iframeOrigin, auth, expect, screenshot] = process.argv.slice(2);

const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "chromium-")), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1000, height: 700 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = browser.pages()[0] || (await browser.newPage());
const responses = [];
page.on("response", (r) => responses.push({ method: r.request().method(), url: r.url(), status: r.status() }));
const consoleLines = [];
page.on("console", (m) => consoleLines.push(m.text()));

let outcome;
try {
  await page.goto(`${appURL}/?auth=${encodeURIComponent(auth)}&iframe=${encodeURIComponent(iframeOrigin)}`);
  await page.click("#connect");
  if (expect === "connected") {
    await page.frameLocator("#event-link").locator("button.connector").first().click({ timeout: 15000 });
  }
  await page.waitForSelector(`body[data-state]`, { timeout: 15000 });
  if (screenshot) {
    await page.evaluate(() => document.getElementById("event-link")?.remove());
    await page.screenshot({ path: screenshot });
  }
  outcome = { state: await page.evaluate(() => document.body.dataset.state), result: await page.evaluate(() => window.__result) };
} catch (err) {
  outcome = { state: "stuck", failure: String(err) };
}
outcome.responses = responses;
outcome.console = consoleLines;
await browser.close();
process.stdout.write(JSON.stringify(outcome));
