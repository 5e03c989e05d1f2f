// The demo app's page. It calls only its own origin: Caddy answers /whoami,
// /signout, /demo-config.json and, through the authkit directive, everything
// under the authkit prefixes. The user's identity comes from Caddy's sign-in,
// never from this page.
import * as widget from "./widget.js";
import { describeFailure, envelope } from "./failure.js";

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);

// Where the vendor's iframe is and where each authkit block listens; Caddy
// answers it (see Caddyfile.example).
const config = await (await fetch("/demo-config.json")).json();
const frontend = query.get("frontend") === "pica" && config.prefixes.pica ? "pica" : "one";
const prefix = config.prefixes[frontend];
const authWindow = query.get("window") === "popup" ? "popup" : "same";

// The connection the widget made last, and the caller's connections as last
// listed: to pick one when a platform names several.
let lastConnection = null;
let connections = [];

function say(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.kind = kind;
}

function showFrontend() {
  for (const a of document.querySelectorAll("[data-frontend]")) {
    if (a.dataset.frontend === frontend) a.setAttribute("aria-current", "page");
    if (!config.prefixes[a.dataset.frontend]) a.hidden = true;
  }
  $("windows").hidden = frontend !== "one";
  for (const a of document.querySelectorAll("[data-window]")) {
    if (a.dataset.window === authWindow) a.setAttribute("aria-current", "page");
  }
}

// Signing in: the demo keeps "user:password" in a cookie, which Caddy hands
// to basic_auth on every request (see Caddyfile.example). A real app's sign-in
// sets its own session cookie.
const cookie = "demo_auth";

async function whoami() {
  // Without the cookie there is nobody to ask about.
  const res = document.cookie.split("; ").some((c) => c.startsWith(cookie + "="))
    ? await fetch("/whoami")
    : new Response(null, { status: 401 });
  const who = $("who");
  const signedIn = res.ok;
  who.textContent = signedIn
    ? `Signed in as ${await res.text()}.`
    : res.status === 401
      ? "Not signed in."
      : await describeFailure(res, "Asking who is signed in");
  who.dataset.state = signedIn ? "signed-in" : "signed-out";
  $("signout").hidden = !signedIn;
  $("signin").hidden = signedIn;
  $("app").hidden = !signedIn;
  return signedIn;
}

async function signIn(event) {
  event.preventDefault();
  const credentials = btoa(`${$("user").value}:${$("password").value}`);
  document.cookie = `${cookie}=${credentials}; Path=/; SameSite=Lax`;
  $("signin-error").textContent = "";
  say("");
  if (await whoami()) return start();
  document.cookie = `${cookie}=; Path=/; Max-Age=0`;
  $("signin-error").textContent = "Wrong user name or password.";
}

async function signOut() {
  document.cookie = `${cookie}=; Path=/; Max-Age=0`;
  widget.close();
  await whoami();
  $("who").textContent = "Signed out.";
}

// Widget.

function widgetOptions(selectedConnection) {
  return {
    frontend, prefix, authWindow, selectedConnection,
    iframe: config.iframe,
    onSuccess: connected,
    onError: (error) => say(`The widget reported an error: ${error}`, "error"),
    onClose: () => {
      if ($("status").dataset.kind === "busy") say("Closed without connecting anything.");
    },
  };
}

async function connect(selectedConnection) {
  say(selectedConnection ? `Opening the widget for ${selectedConnection}…` : "Opening the widget…", "busy");
  $("reconnect").hidden = true;
  try {
    await widget.open(widgetOptions(selectedConnection));
  } catch (err) {
    say(err.message, "error");
  }
}

async function connected(connection) {
  lastConnection = connection;
  say(`Connected ${connection.name || connection.platform}.`, "ok");
  await listConnections();
  // By platform when that names one connection; else by the new one's id.
  const name = connection.name || connection.platform;
  const same = connections.filter((c) => c.platform === connection.platform);
  await callThrough(same.length === 1 ? connection.platform : lastId() || connection.platform, name);
}

// Connections.

async function listConnections() {
  const res = await fetch(prefix + "/connections");
  const table = $("connections");
  if (!res.ok) {
    table.hidden = true;
    $("connections-note").textContent = await describeFailure(res, "Listing your connections");
    $("connections-note").dataset.kind = "error";
    return;
  }
  const { rows } = await res.json();
  connections = rows;
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const c of rows) {
    const tr = document.createElement("tr");
    tr.dataset.platform = c.platform;
    tr.dataset.id = c.id;
    const cells = [c.name || c.platform, c.state || (c.active ? "active" : "inactive"), new Date(c.createdAt).toLocaleString()];
    for (const text of cells) tr.insertCell().textContent = text;
    const actions = tr.insertCell();
    actions.append(
      button("Call", () => callThrough(c.id, c.name || c.platform)),
      button("Disconnect", () => disconnect(c)),
    );
    body.append(tr);
  }
  table.hidden = rows.length === 0;
  $("connections-note").dataset.kind = "";
  $("connections-note").textContent = rows.length
    ? `${rows.length} connection${rows.length > 1 ? "s" : ""}, as the vendor's vault holds them for you and only you.`
    : "None yet.";
}

function button(label, onclick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.onclick = onclick;
  return b;
}

async function disconnect(c) {
  const res = await fetch(`${prefix}/connections/${encodeURIComponent(c.id)}`, { method: "DELETE" });
  if (!res.ok) return say(await describeFailure(res, `Disconnecting ${c.name}`), "error");
  say(`Disconnected ${c.name}.`);
  await listConnections();
}

// Passthrough, keyless: the page names the connection by platform or id and
// Caddy attaches the key of the caller's own connection, and the secret.

async function passthrough(path, connection) {
  return fetch(`${prefix}/passthrough${path}`, { headers: { "X-AuthKit-Connection": connection } });
}

async function callThrough(connection, name, path = "/users/me") {
  let res = await passthrough(path, connection);
  const problem = res.ok ? null : await envelope(res);
  let note = "";
  if (problem?.code === "connection_ambiguous" && problem.connections?.length) {
    // Several connections of that platform: name one by id.
    const id = pick(problem.connections.map((c) => c.id));
    note = `You have ${problem.connections.length} ${name} connections; this called the ${id === lastId() ? "one just made" : "newest"}. `;
    res = await passthrough(path, id);
  }
  await showCall(res, name, path, note);
}

function lastId() {
  return lastConnection?.id || lastConnection?._id;
}

// pick prefers the connection just made, then the newest listed.
function pick(ids) {
  if (ids.includes(lastId())) return lastId();
  const listed = connections.filter((c) => ids.includes(c.id)).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  return listed[0]?.id || ids[0];
}

async function showCall(res, name, path, note = "") {
  $("call").hidden = false;
  const result = $("call-result");
  result.dataset.status = res.status;
  const reconnect = res.headers.get("AuthKit-Reconnect");
  const text = await res.text();
  $("call-raw").textContent = `${res.status} ${res.headers.get("content-type") || ""}\n\n${pretty(text)}`;
  if (reconnect) {
    offerReconnect(reconnect, name, res.status);
  }
  if (!res.ok) {
    result.dataset.kind = "error";
    let message = "";
    try {
      message = JSON.parse(text).error?.message || "";
    } catch {
      // A third party's own error body: the raw view shows it.
    }
    result.textContent = note + `Calling ${name} (GET ${path}) failed: ${res.status}${message ? ": " + message : ` (${name} answered this)`}.`;
    return;
  }
  let echo = {};
  try {
    echo = JSON.parse(text);
  } catch {
    // Not the sandbox's echo: say less.
  }
  const received = Object.keys(echo.headers || {}).map((h) => h.toLowerCase());
  const leaked = received.filter((h) => ["authorization", "cookie", "x-authkit-ticket"].includes(h));
  result.dataset.kind = leaked.length ? "error" : "ok";
  result.textContent =
    note +
    `${name} answered ${res.status} to ${echo.method || "GET"} ${echo.path || path}. ` +
    "Caddy attached the vendor's secret and your connection's key; this page sent neither. " +
    (leaked.length ? `But ${name} received ${leaked.join(", ")}!` : "Your sign-in credentials did not reach it.");
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function offerReconnect(platform, name, status) {
  const label = name || platform;
  $("reconnect-why").textContent = `${label} answered ${status}: the grant expired or was revoked. `;
  $("reconnect-button").textContent = `Reconnect ${label}`;
  $("reconnect-button").onclick = () => connect(label);
  $("reconnect").hidden = false;
}

// Wiring.

async function start() {
  await widget.widget(frontend);
  await listConnections();
  if (frontend === "one" && widget.returning()) {
    // Back from the provider's consent page (One's same-tab OAuth).
    say("Finishing the connection…", "busy");
    widget.resume(widgetOptions()).catch((err) => say(err.message, "error"));
  }
}

showFrontend();
$("connect").onclick = () => connect();
$("signin").onsubmit = signIn;
$("signout").onclick = signOut;
$("expired").onclick = () => callThrough("gmail", "Gmail", "/status/401");
$("foreign").onclick = () => callThrough("hubspot", "HubSpot");

if (await whoami()) await start();
document.body.dataset.ready = "true";
