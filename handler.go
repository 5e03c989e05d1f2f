package caddyauthkit

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// route is one of the module's endpoints under the prefix.
type route struct {
	name string // in metrics and logs
	// allow is the Allow header's value: the route's methods, OPTIONS included.
	allow []string
	// headers the browser may need to send on this route besides the
	// configured ones
	headers string
}

func newRoute(name, methods, headers string) *route {
	return &route{name: name, allow: []string{methods}, headers: headers}
}

var (
	tokenRoute       = newRoute("token", "POST, OPTIONS", "X-AuthKit-Ticket")
	ticketRoute      = newRoute("ticket", "POST, OPTIONS", "")
	connectionsRoute = newRoute("connections", "GET, OPTIONS", "")
	connectionRoute  = newRoute("connection", "DELETE, OPTIONS", "")
	connectorsRoute  = newRoute("connectors", "GET, OPTIONS", "")
	passthroughRoute = newRoute("passthrough", "GET, POST, PUT, PATCH, DELETE, OPTIONS",
		strings.Join(slices.Concat(connectionKeyHeaders, actionIDHeaders, []string{keylessHeader}), ", "))
	unknownRoute = newRoute("unknown", "", "")

	// routes are those a request can be answered on.
	routes = []*route{tokenRoute, ticketRoute, connectionsRoute, connectionRoute, connectorsRoute, passthroughRoute}
)

func (rt *route) allows(method string) bool {
	for m := range strings.SplitSeq(rt.allow[0], ", ") {
		if m == method {
			return true
		}
	}
	return false
}

// ServeHTTP answers requests under the prefix and passes all others on.
func (a *AuthKit) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if a.identityHeader != "" {
		closeAfterChunked(w, r)
	}
	var rest string
	switch {
	case strings.HasPrefix(r.URL.Path, a.Prefix+"/"):
		rest = r.URL.Path[len(a.Prefix)+1:]
	case r.URL.Path == a.Prefix:
	case a.prefixStripped(r):
		a.writeError(w, r, unknownRoute, notRetryable(newError(http.StatusInternalServerError, "config_error",
			"authkit sees paths without its prefix "+a.Prefix+": it is inside handle_path (or uri strip_prefix); use handle")))
		return nil
	default:
		return next.ServeHTTP(w, r)
	}
	rt, arg := matchRoute(rest)

	// Preflight comes without credentials: it is answered before identity.
	if r.Method == http.MethodOptions && rt != unknownRoute {
		a.cors.preflight(w, r, rt)
		a.metrics.request(r, rt.name, http.StatusNoContent)
		return nil
	}
	a.cors.allowOrigin(w.Header(), r.Header.Get("Origin"))

	err := a.serve(w, r, rt, arg)
	if se, ok := err.(streamError); ok {
		return se.error
	}
	if err != nil {
		a.writeError(w, r, rt, err)
	}
	return nil
}

func (a *AuthKit) serve(w http.ResponseWriter, r *http.Request, rt *route, arg string) error {
	if rt == unknownRoute {
		return newError(http.StatusNotFound, "route_not_found", "no such AuthKit route")
	}
	if !rt.allows(r.Method) {
		w.Header()["Allow"] = rt.allow
		return newError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: "+rt.allow[0])
	}
	id, err := a.resolveIdentity(r, rt)
	if err != nil {
		a.auditRefused(r, rt, err)
		return err
	}
	ctx, done := workContext(r)
	defer done()
	if rt == passthroughRoute {
		// The confinement check reads the path as the client escaped it.
		escaped := r.URL.EscapedPath()
		base := a.Prefix + "/passthrough/"
		if !strings.HasPrefix(escaped, base) {
			return newError(http.StatusBadRequest, "path_invalid", "the passthrough path is malformed")
		}
		return a.servePassthrough(ctx, w, r, id, escaped[len(base):])
	}
	if err := a.discardBody(r); err != nil {
		return err
	}
	switch rt {
	case tokenRoute:
		return a.serveToken(ctx, w, r, id)
	case ticketRoute:
		return a.serveTicket(w, r, id)
	case connectionsRoute:
		return a.serveConnections(ctx, w, r, id)
	case connectionRoute:
		return a.deleteConnection(ctx, w, r, id, arg)
	case connectorsRoute:
		return a.serveConnectors(ctx, w, r)
	}
	panic(fmt.Sprintf("authkit: route %q has no handler", rt.name))
}

// prefixStripped tells a request whose path had the prefix removed before
// it got here (handle_path, uri strip_prefix): passed on, it would end in an
// empty 200 that is hard to trace back to the config.
func (a *AuthKit) prefixStripped(r *http.Request) bool {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok || orig.URL == nil {
		return false
	}
	return orig.URL.Path == a.Prefix+r.URL.Path ||
		(orig.URL.Path == a.Prefix || orig.URL.Path == a.Prefix+"/") && (r.URL.Path == "/" || r.URL.Path == "")
}

// matchRoute names the route of the path after the prefix, and its argument
// (the connection id of DELETE connections/{id}).
func matchRoute(rest string) (*route, string) {
	switch rest {
	case "token":
		return tokenRoute, ""
	case "ticket":
		return ticketRoute, ""
	case "connections":
		return connectionsRoute, ""
	case "connectors":
		return connectorsRoute, ""
	case "passthrough":
		return passthroughRoute, ""
	}
	if strings.HasPrefix(rest, "passthrough/") {
		return passthroughRoute, ""
	}
	if id, ok := strings.CutPrefix(rest, "connections/"); ok && validConnectionID(id) {
		return connectionRoute, id
	}
	return unknownRoute, ""
}

// discardBody enforces the body limit on routes that read no body, and
// refuses a body that cannot be read whole, before anything is done.
func (a *AuthKit) discardBody(r *http.Request) error {
	tooLarge := newError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than "+strconv.FormatInt(a.MaxBodySize, 10)+" bytes")
	if r.ContentLength > a.MaxBodySize {
		return tooLarge
	}
	if r.Body == nil {
		return nil
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, a.MaxBodySize+1))
	if err != nil {
		return errBodyInvalid()
	}
	if n > a.MaxBodySize {
		return tooLarge
	}
	return nil
}

// positiveParam validates a query number, or returns fallback when absent.
func positiveParam(value, name, fallback string, max int) (string, error) {
	if value == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 1 || n > max {
		return "", newError(http.StatusBadRequest, "query_invalid", name+" must be a whole number from 1 to "+strconv.Itoa(max))
	}
	return strconv.Itoa(n), nil
}

func (a *AuthKit) writeJSON(w http.ResponseWriter, r *http.Request, rt *route, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	a.metrics.request(r, rt.name, http.StatusOK)
}

// serverName is the name of the Caddy server that took r, for metrics.
func serverName(r *http.Request) string {
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv.Name() != "" {
		return srv.Name()
	}
	return "unknown"
}
