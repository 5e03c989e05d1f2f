// Opening the vendor's widget: @withone/auth (One) or @picahq/authkit (Pica),
// the real packages, served by Caddy from demo/node_modules.
//
// Both put token.headers into the iframe's URL on the vendor's origin, so the
// page never puts its sign-in credential there: it asks Caddy for a ticket
// (same origin, behind the sign-in) and hands the iframe only that. A ticket
// lives a minute, so the page fetches a fresh one every time it opens the
// widget.
import { describeFailure } from "./failure.js";

const packages = {
  one: { path: "/vendor/one/index.esm.js", hook: "useOneAuth" },
  pica: { path: "/vendor/pica/index.esm.js", hook: "useAuthKit" },
};

// The open widget's handle ({open, close}), so the next open replaces it.
let current = null;

// ticket asks Caddy for a ticket for the signed-in user.
export async function ticket(prefix) {
  const res = await fetch(prefix + "/ticket", { method: "POST" });
  if (!res.ok) throw new Error(await describeFailure(res, "Getting a ticket"));
  return (await res.json()).ticket;
}

// props builds the widget's options. The token URL is absolute: the iframe
// calls it from the vendor's origin.
function props(o, t) {
  return {
    token: { url: location.origin + o.prefix + "/token", headers: { "X-AuthKit-Ticket": t } },
    baseUrl: o.iframe || undefined, // undefined: the vendor's hosted iframe
    authWindow: o.authWindow,
    selectedConnection: o.selectedConnection,
    // The widgets leave the iframe open after success or an error; the app
    // closes it and says what happened itself.
    onSuccess: (connection) => {
      close();
      o.onSuccess(connection);
    },
    onError: (error) => {
      close();
      o.onError(error);
    },
    onClose: () => o.onClose(),
  };
}

const loaded = {};

// widget loads a frontend package once; preload calls it at page load, so
// opening later needs no more than the ticket.
export function widget(frontend) {
  const { path, hook } = packages[frontend];
  loaded[frontend] ??= import(path).then((module) => module[hook]);
  return loaded[frontend];
}

// close closes the widget, if one is open.
export function close() {
  current?.close();
}

// open opens the widget with a fresh ticket. o: {frontend, prefix, iframe,
// authWindow, selectedConnection, onSuccess, onError, onClose}.
export async function open(o) {
  const t = await ticket(o.prefix);
  const use = await widget(o.frontend);
  close();
  current = use(props(o, t));
  current.open();
}

// returning tells whether the tab comes back from One's same-tab OAuth
// redirect (the widget appends one_auth_state or one_auth_error).
export function returning() {
  const q = new URLSearchParams(location.search);
  return q.has("one_auth_state") || q.has("one_auth_error");
}

// resume hands the return to @withone/auth, which reopens its iframe to
// learn how the connection went; the callbacks fire as for open.
export async function resume(o) {
  const t = await ticket(o.prefix);
  const use = await widget("one");
  close();
  current = use(props(o, t));
}
