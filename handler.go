package caddyauthkit

import (
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// route is one of the module's endpoints under the prefix.
type route struct {
	name string // in metrics, logs and the audit
	// allow is the Allow header's value: the route's methods, OPTIONS
	// included.
	allow string
	// headers the browser may send on this route besides the configured ones
	headers string
	// audited: every request gets an audit line, not only denials.
	audited bool
	// streamsBody: the request body goes to the vendor as it comes; other
	// routes read no body and refuse one over max_body_size.
	streamsBody bool
	serve       func(a *AuthKit, w *recorder, rq *request) error
}

var (
	ticketRoute = &route{name: "ticket", allow: "POST, OPTIONS", audited: true,
		serve: (*AuthKit).serveTicket}
	tokenRoute = &route{name: "token", allow: "POST, OPTIONS", headers: ticketHeader, audited: true,
		serve: (*AuthKit).serveToken}
	passthroughRoute = &route{name: "passthrough", allow: "GET, POST, PUT, PATCH, DELETE, OPTIONS",
		headers: passthroughHeaders, audited: true, streamsBody: true, serve: (*AuthKit).servePassthrough}
	connectionsRoute = &route{name: "connections", allow: "GET, OPTIONS",
		serve: (*AuthKit).serveConnections}
	connectionRoute = &route{name: "connection", allow: "DELETE, OPTIONS", audited: true,
		serve: (*AuthKit).deleteConnection}
	connectorsRoute = &route{name: "connectors", allow: "GET, OPTIONS",
		serve: (*AuthKit).serveConnectors}
	// unknownRoute answers 404 for any other path under the prefix.
	unknownRoute = &route{name: "unknown"}

	// allRoutes are those a request can be answered on.
	allRoutes = []*route{ticketRoute, tokenRoute, passthroughRoute, connectionsRoute, connectionRoute, connectorsRoute}

	// routes name them by the first segment of the path after the prefix
	// (connections/{id} is found from connections).
	routes = map[string]*route{
		"ticket":      ticketRoute,
		"token":       tokenRoute,
		"passthrough": passthroughRoute,
		"connections": connectionsRoute,
		"connectors":  connectorsRoute,
	}
)

func (rt *route) allows(method string) bool {
	for m := range strings.SplitSeq(rt.allow, ", ") {
		if m == method {
			return true
		}
	}
	return false
}

// ServeHTTP answers every request under the prefix, and passes all others
// on untouched. Metrics and the audit are recorded once a route is done.
func (a *AuthKit) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if len(a.identityHeaders) > 0 {
		closeAfterChunked(w, r)
	}
	rt, arg, inPrefix := a.routeOf(r)
	if !inPrefix {
		return next.ServeHTTP(w, r)
	}
	// Preflight comes without credentials: it is answered before identity.
	if r.Method == http.MethodOptions && rt != unknownRoute {
		a.cors.preflight(w, r, rt)
		a.metrics.request(r, rt.name, http.StatusNoContent)
		return nil
	}
	rec := &recorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	rq := &request{r: r, route: rt, arg: arg, start: time.Now()}
	a.cors.allowOrigin(rec.Header(), r.Header.Get("Origin"))
	err := a.serve(rec, rq)
	broken := err != nil && rec.status != 0 // the answer had begun
	var failure *apiError
	if err != nil && !broken {
		failure = errorBody(err)
		a.writeError(rec, rq, failure)
	}
	a.metrics.request(r, rt.name, rec.status)
	a.audit(rq, rec, failure, broken)
	if broken {
		return err // nothing more can be said: Caddy logs it
	}
	return nil
}

// serve runs the route once the method is allowed and the caller known.
func (a *AuthKit) serve(w *recorder, rq *request) error {
	r, rt := rq.r, rq.route
	if rt == unknownRoute {
		return newError(http.StatusNotFound, "route_not_found", "no such AuthKit route")
	}
	if !rt.allows(r.Method) {
		w.Header()["Allow"] = []string{rt.allow}
		return newError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: "+rt.allow)
	}
	rq.identified = true
	caller, err := a.resolveIdentity(r, rt)
	if err != nil {
		return err
	}
	rq.caller = caller
	if !rt.streamsBody {
		if err := a.discardBody(r); err != nil {
			return err
		}
	}
	ctx, done := workContext(r, rq.requestID())
	defer done()
	rq.ctx = ctx
	return rt.serve(a, w, rq)
}

// routeOf names the route of r. The prefix is matched as Caddy's path
// matcher matches (case-insensitively, on the path cleaned of //, . and
// .., and on Windows read as its filesystem reads it), so that a matcher
// such as `not path /authkit/token` in front and authkit always agree on
// what a request names: a path a `path {prefix}/*` matcher takes is
// answered here, never passed on to the app. inPrefix is false for paths
// outside the prefix. arg is the connection id of connections/{id}, or the
// passthrough path as the client escaped it.
func (a *AuthKit) routeOf(r *http.Request) (rt *route, arg string, inPrefix bool) {
	lower := caddyhttp.NormalizedPath(strings.ToLower(r.URL.Path), true)
	rest, ok := strings.CutPrefix(lower, a.prefixLower)
	if !ok || rest != "" && rest[0] != '/' {
		return nil, "", false
	}
	rest = strings.TrimPrefix(rest, "/")
	first, tail, nested := strings.Cut(rest, "/")
	rt = routes[first]
	switch {
	case rt == nil:
		return unknownRoute, "", true
	case rt == passthroughRoute:
		return rt, a.passthroughPath(r), true
	case !nested:
		return rt, "", true
	case rt == connectionsRoute && validConnectionID(tail):
		// The id as the client wrote it: only ASCII ids are valid, and
		// lower-casing ASCII keeps every offset.
		if original := caddyhttp.NormalizedPath(r.URL.Path, true); len(original) == len(lower) {
			return connectionRoute, original[len(original)-len(tail):], true
		}
	}
	return unknownRoute, "", true
}

// passthroughPath is the path after {prefix}/passthrough/ as the client
// escaped it, for the confinement check; "" when the request's path is not
// literally below it (a cleaned, doubled or dotted variant), which the
// passthrough route refuses rather than guess.
func (a *AuthKit) passthroughPath(r *http.Request) string {
	escaped := r.URL.EscapedPath()
	base := a.Prefix + "/passthrough/"
	if !strings.HasPrefix(escaped, base) || len(escaped) == len(base) {
		return ""
	}
	return escaped[len(base):]
}
