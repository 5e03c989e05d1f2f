// Drives the demo page (demo/app) in headless Chromium as a person would, and
// prints what happened as JSON for browser_test.go to judge.
//
// Usage: node browser.mjs <scenario> <app URL> [screenshot dir]
//
// The browser signs in as demo / demo with the page's form, clicks through the real @withone/auth or
// @picahq/authkit widget and the stand-in vendor iframe, and records every
// iframe payload (?data=), page error, console error, failed request to the
// app and response from it. It never removes the iframe itself.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [scenario, appURL, shots] = process.argv.slice(2);
const app = new URL(appURL).origin;
const timeout = 15000;

const out = {
  scenario, payloads: [], pageErrors: [], consoleErrors: [], failedRequests: [], iframeFailedRequests: [], responses: [], texts: {}, steps: [],
};

const profile = mkdtempSync(join(tmpdir(), "chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1000, height: 720 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
context.setDefaultTimeout(timeout);
const page = context.pages()[0] || (await context.newPage());

const sameOrigin = (url) => url.startsWith(app + "/");
page.on("pageerror", (err) => out.pageErrors.push(String(err)));
page.on("console", (m) => m.type() === "error" && out.consoleErrors.push(`${m.text()} (${m.location().url})`));
// Failed requests to the app: the page's own, and the vendor iframe's (its
// token call is cross-origin, so CORS may refuse it).
page.on("requestfailed", (r) => {
  if (!sameOrigin(r.url())) return;
  const list = r.frame() === page.mainFrame() ? out.failedRequests : out.iframeFailedRequests;
  list.push(`${r.method()} ${new URL(r.url()).pathname}: ${r.failure()?.errorText}`);
});
page.on("response", (r) => {
  if (sameOrigin(r.url())) out.responses.push({ method: r.request().method(), path: new URL(r.url()).pathname, status: r.status() });
});
// Every iframe the widget opens carries its payload in ?data=.
page.on("framenavigated", (frame) => {
  const data = frame !== page.mainFrame() && new URL(frame.url()).searchParams.get("data");
  if (data) {
    const json = Buffer.from(data, "base64").toString("utf8");
    out.payloads.push({ origin: new URL(frame.url()).origin, json, payload: JSON.parse(json) });
  }
});

const step = (name) => out.steps.push(name);
const text = async (selector) => (await page.locator(selector).innerText()).trim();
async function snap(name) {
  if (shots) await page.screenshot({ path: join(shots, `${scenario}-${name}.png`) });
}

// load opens the app page and signs in with its form.
async function load(query = "") {
  step("load");
  await page.goto(appURL + "/" + query);
  await page.waitForSelector("body[data-ready]");
  await signIn();
}

// act is one step a person takes: a click, then what the page shows for it.
async function act(name, selector, shown) {
  step(name);
  await page.click(selector);
  await page.waitForSelector(shown);
}

async function signIn() {
  step("sign in");
  await page.fill("#user", "demo");
  await page.fill("#password", "demo");
  await page.click("#signin button");
  await page.waitForSelector('#who[data-state="signed-in"]');
  out.texts.who = await text("#who");
}

// openWidget clicks Connect and waits for the iframe's connector list.
async function openWidget() {
  step("open widget");
  await page.click("#connect");
  const frame = page.frameLocator("#event-link");
  await frame.locator("button.connector").first().waitFor();
  return frame;
}

// connected waits for what the page shows after a connection: the modal gone
// (closed by the page itself), the words, the list and the passthrough call.
async function connected(name) {
  step("wait for connected");
  await page.waitForSelector('#status[data-kind="ok"]');
  await page.waitForSelector("#event-link", { state: "detached" });
  await page.waitForSelector("#call-result[data-status]");
  out.texts.status = await text("#status");
  out.texts.call = await text("#call-result");
  out.texts.callStatus = Number(await page.getAttribute("#call-result", "data-status"));
  out.texts.connections = await page.$$eval("#connections tbody tr", (rows) => rows.map((r) => r.dataset.platform));
  await snap(name);
}

async function closedWithoutConnecting(how) {
  await page.waitForSelector("#event-link", { state: "detached" });
  out.texts[how] = await text("#status");
}

const scenarios = {
  // One, same-tab OAuth: the tab goes to the provider's consent page and back.
  async "one-same"() {
    await load("?frontend=one&window=same");
    const frame = await openWidget();
    await snap("widget");
    step("pick Gmail");
    await frame.getByRole("button", { name: "Gmail" }).click();
    await page.waitForURL(/\/sandbox\/oauth\/authorize/);
    out.texts.consentOrigin = new URL(page.url()).origin;
    await snap("consent");
    step("allow");
    await page.click("#allow");
    await page.waitForURL((u) => u.origin === app);
    await connected("connected");
    out.texts.finalURL = page.url();
  },

  // One with authWindow "popup": the iframe opens the consent page itself.
  async "one-popup"() {
    await load("?frontend=one&window=popup");
    const frame = await openWidget();
    step("pick Slack");
    const [popup] = await Promise.all([context.waitForEvent("page"), frame.getByRole("button", { name: "Slack" }).click()]);
    await popup.locator("#allow").click();
    step("allowed in the popup");
    if (!popup.isClosed()) await popup.waitForEvent("close");
    await connected("connected");
  },

  // Pica: connecting is immediate; Gmail again, so the platform is ambiguous
  // when there is already a Gmail connection.
  async pica() {
    await load("?frontend=pica");
    const frame = await openWidget();
    step("pick Gmail");
    await frame.getByRole("button", { name: "Gmail" }).click();
    await connected("connected");
  },

  // Closing the widget without connecting: Escape, then the × button.
  async cancel() {
    await load();
    let frame = await openWidget();
    step("Escape");
    await frame.locator("button.connector").first().press("Escape");
    await closedWithoutConnecting("afterEscape");
    frame = await openWidget();
    step("close button");
    await frame.getByRole("button", { name: "Close" }).click();
    await closedWithoutConnecting("afterClose");
    await snap("closed");
  },

  // A third party answers 401: the page offers to reconnect that platform.
  // Then someone else's connection, refused.
  async reconnect() {
    await load();
    await act("expired grant", "#expired", "#reconnect:not([hidden])");
    out.texts.call = await text("#call-result");
    out.texts.reconnect = await text("#reconnect");
    await snap("offered");
    step("reconnect");
    await page.click("#reconnect-button");
    const frame = page.frameLocator("#event-link");
    await frame.locator("button.connector").first().waitFor();
    out.texts.offeredConnectors = await frame.locator("button.connector").allInnerTexts();
    await frame.getByRole("button", { name: "Close" }).click();
    await closedWithoutConnecting("afterClose");
    await act("someone else's connection", "#foreign", '#call-result[data-status="404"]');
    out.texts.foreign = await text("#call-result");
  },

  // Signing out shows the form again. Then a session that ends behind the
  // page's back: Connect gets no ticket, so no iframe, and the page says why.
  async "signed-out"() {
    await load();
    await act("sign out", "#signout", "#signin:not([hidden])");
    out.texts.signedOut = await text("#who");
    await snap("form");
    await signIn();
    await context.clearCookies();
    await act("session ends", "#connect", '#status[data-kind="error"]');
    out.texts.status = await text("#status");
    out.texts.iframes = await page.locator("#event-link").count();
    await snap("refused");
  },

  // The iframe on an origin that is not in cors_origins: the browser keeps
  // the token from it; the iframe says why and the page repeats it.
  async foreign() {
    await load();
    await act("open widget", "#connect", '#status[data-kind="error"]');
    await page.waitForSelector("#event-link", { state: "detached" });
    out.texts.status = await text("#status");
    await snap("refused");
  },
};

try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  await scenarios[scenario]();
  out.done = true;
} catch (err) {
  out.failure = `${out.steps.at(-1) || "start"}: ${String(err.message || err).split("\n")[0]}`;
  await snap("failure").catch(() => {});
  out.texts.failureStatus = await text("#status").catch(() => "");
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out));
