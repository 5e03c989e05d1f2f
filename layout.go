package caddyauthkit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
)

// layout is where a handler sits in the config being loaded, as its
// provisioning context shows it: the server being set up, and the subroutes
// around the handler. Caddy loads routes in order, so the routes before the
// handler's own are loaded already and those after are not, which is all
// the checks here need.
type layout struct {
	server *caddyhttp.Server
	// lists are the route lists from the server's down to the handler's.
	lists []caddyhttp.RouteList
	// scope is the innermost of them: the server or a subroute.
	scope any
	// hosts are those of the innermost host matcher around the handler.
	hosts string
	// site names the handler's place for people: its hosts, else the
	// server's listen addresses.
	site string
}

// layoutOf reads the handler's layout from ctx; nil outside a server (the
// doctor's per-handler check, unit tests).
func layoutOf(ctx caddy.Context) *layout {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil {
		return nil
	}
	l := &layout{server: srv, lists: []caddyhttp.RouteList{srv.Routes}, scope: srv}
	for _, m := range ctx.Modules() {
		if sr, ok := m.(*caddyhttp.Subroute); ok {
			l.lists = append(l.lists, sr.Routes)
			l.scope = sr
		}
	}
	for _, list := range l.lists {
		if i := loading(list); i >= 0 {
			if hosts := hostsOf(list[i].MatcherSets); len(hosts) > 0 {
				l.hosts = strings.Join(hosts, " ")
			}
		}
	}
	l.site = "site " + l.hosts
	if l.hosts == "" {
		l.site = "server " + srv.Name() + " on " + strings.Join(srv.Listen, " ")
	}
	return l
}

// loading is the index of the route of list being loaded: the first whose
// handlers are not set up yet; -1 for none.
func loading(list caddyhttp.RouteList) int {
	for i, rt := range list {
		if len(rt.HandlersRaw) > 0 && len(rt.Handlers) == 0 {
			return i
		}
	}
	return -1
}

// ahead is a handler that runs before this one: loaded already, or only
// its JSON (the rest of the route being loaded). matched: it sits in a
// route of its own with matchers, so it may not apply to this handler's
// requests.
type ahead struct {
	loaded  caddyhttp.MiddlewareHandler
	raw     map[string]any
	matched bool
}

// before are the handlers that run before a: at each level, those of the
// routes loaded ahead of a's (but terminal ones and those of its group),
// then those of the route being loaded up to the one that is, or holds, a
// (the Caddyfile puts directives without matchers in one route, which
// Caddy loads as a whole); and the handlers inside each of them.
func (l *layout) before(a *AuthKit) []ahead {
	var out []ahead
	for _, list := range l.lists {
		i := loading(list)
		if i < 0 {
			i = len(list)
		}
		group := ""
		if i < len(list) {
			group = list[i].Group
		}
		for _, rt := range list[:i] {
			if rt.Terminal || group != "" && rt.Group == group {
				continue // it ends the chain or runs instead of a's: never before a
			}
			for _, h := range rt.Handlers {
				out = ahead{loaded: h, matched: len(rt.MatcherSets) > 0}.appendTo(out)
			}
		}
		if i == len(list) {
			continue
		}
		for _, h := range list[i].HandlersRaw {
			var m map[string]any
			if json.Unmarshal(h, &m) != nil || a.within(m) {
				break
			}
			out = ahead{raw: m}.appendTo(out) // a's own route: its matchers are a's
		}
	}
	return out
}

// appendTo appends h and, when h is a subroute (a route or handle block),
// the handlers of its routes that run before a when h does: not those of
// a terminal route, for when one matches, the chain ends there.
func (h ahead) appendTo(out []ahead) []ahead {
	out = append(out, h)
	if sr, ok := h.loaded.(*caddyhttp.Subroute); ok {
		for _, rt := range sr.Routes {
			if rt.Terminal {
				continue
			}
			for _, in := range rt.Handlers {
				out = ahead{loaded: in, matched: h.matched || len(rt.MatcherSets) > 0}.appendTo(out)
			}
		}
	}
	if h.raw["handler"] == "subroute" {
		routes, _ := h.raw["routes"].([]any)
		for _, r := range routes {
			rt, _ := r.(map[string]any)
			if rt["terminal"] == true {
				continue
			}
			matchers, _ := rt["match"].([]any)
			handlers, _ := rt["handle"].([]any)
			for _, in := range handlers {
				if m, ok := in.(map[string]any); ok {
					out = ahead{raw: m, matched: h.matched || len(matchers) > 0}.appendTo(out)
				}
			}
		}
	}
	return out
}

// within: the handler h (as JSON) is a, or holds it.
func (a *AuthKit) within(h any) bool {
	switch v := h.(type) {
	case map[string]any:
		if v["handler"] == "authkit" {
			prefix, _ := v["prefix"].(string)
			return strings.EqualFold(normalPrefix(prefix), a.Prefix)
		}
		for _, x := range v {
			if a.within(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if a.within(x) {
				return true
			}
		}
	}
	return false
}

// strips: h takes a prefix or suffix off the path of a's requests, always,
// or under a matcher whose prefix may meet a's.
func (a *AuthKit) strips(h ahead) bool {
	var prefix, suffix string
	switch {
	case h.loaded != nil:
		rw, ok := h.loaded.(*rewrite.Rewrite)
		if !ok {
			return false
		}
		prefix, suffix = rw.StripPathPrefix, rw.StripPathSuffix
	case h.raw["handler"] == "rewrite":
		prefix, _ = h.raw["strip_path_prefix"].(string)
		suffix, _ = h.raw["strip_path_suffix"].(string)
	}
	if prefix == "" && suffix == "" {
		return false
	}
	stripped := "/" + strings.Trim(strings.ToLower(prefix), "/")
	return !h.matched || prefix != "" && (under(a.prefixLower, stripped) || under(stripped, a.prefixLower))
}

// copiedHeaders are the request headers h, a forward_auth, sets from the
// auth service's answer, having first deleted the client's own (Caddy
// 2.11.2 on): loaded, or as JSON.
func copiedHeaders(h ahead) []string {
	var deleted, set []string
	collect := func(request *headers.HeaderOps) {
		if request != nil {
			deleted = append(deleted, request.Delete...)
			for name := range request.Set {
				set = append(set, name)
			}
		}
	}
	if rp, ok := h.loaded.(*reverseproxy.Handler); ok {
		for _, hr := range rp.HandleResponse {
			for _, rt := range hr.Routes {
				for _, handler := range rt.Handlers {
					if ops, ok := handler.(*headers.Handler); ok {
						collect(ops.Request)
					}
				}
			}
		}
	}
	if h.raw["handler"] == "reverse_proxy" {
		for _, hr := range list(h.raw["handle_response"]) {
			for _, rt := range list(field(hr, "routes")) {
				for _, handler := range list(field(rt, "handle")) {
					var ops headers.Handler
					if field(handler, "handler") == "headers" && remarshal(handler, &ops) == nil {
						collect(ops.Request)
					}
				}
			}
		}
	}
	var copied []string
	for _, name := range set {
		if slices.ContainsFunc(deleted, func(d string) bool { return strings.EqualFold(d, name) }) {
			copied = append(copied, http.CanonicalHeaderKey(name))
		}
	}
	return copied
}

func field(v any, name string) any {
	m, _ := v.(map[string]any)
	return m[name]
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// remarshal decodes a generic JSON value into dst.
func remarshal(v, dst any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

func hostsOf(sets caddyhttp.MatcherSets) []string {
	var hosts []string
	for _, set := range sets {
		for _, m := range set {
			switch h := m.(type) {
			case caddyhttp.MatchHost:
				hosts = append(hosts, h...)
			case *caddyhttp.MatchHost:
				hosts = append(hosts, *h...)
			}
		}
	}
	return hosts
}

// checkPlace checks where the handler sits in the config being loaded (see
// checkLayout) and names the place for messages. Outside a server (the
// doctor's check of one handler, unit tests) there is nothing to check.
func (a *AuthKit) checkPlace(ctx caddy.Context) (where string, copied []string, err error) {
	place := layoutOf(ctx)
	where = a.where(place)
	if place == nil {
		return where, nil, nil
	}
	copied, err = a.checkLayout(place)
	if observe := observeLayout.Load(); observe != nil {
		(*observe)(a, place, copied, err) // the doctor reports every handler
		err = nil
	}
	return where, copied, err
}

// observeLayout is set while the doctor runs: it hears every handler's
// layout as it is provisioned, layout errors do not fail the provisioning,
// and warnings are not logged, for the doctor reports them all at once.
var observeLayout atomic.Pointer[func(a *AuthKit, l *layout, copied []string, err error)]

// checkLayout refuses the places a handler cannot work from, naming its
// site and prefix:
//
//   - under handle_path, or after uri strip_prefix: the handler would not
//     see the path the site's matchers saw;
//   - beside another authkit with the same or an overlapping prefix in one
//     site: the second would never be reached;
//   - identity_trusted_proxies_only on a server without trusted_proxies:
//     every request would be refused.
//
// It also returns the headers a forward_auth before the handler copies
// from the auth service: a header identity among them is safe, and none of
// them goes to the vendor.
func (a *AuthKit) checkLayout(l *layout) (copied []string, err error) {
	where := a.where(l)
	for _, h := range l.before(a) {
		if a.strips(h) {
			return nil, fmt.Errorf("%s is inside handle_path or after uri strip_prefix, so it does not see the path the site's matchers saw: put it in handle (not handle_path), and set prefix to the full path", where)
		}
		copied = append(copied, copiedHeaders(h)...)
	}
	if a.IdentityTrustedProxiesOnly && !hasTrustedProxies(l.server) {
		return copied, fmt.Errorf("%s: identity_trusted_proxies_only needs trusted_proxies in the server's options (servers { trusted_proxies static ... }); without them every request would be refused", where)
	}
	if other := claimPrefix(l.scope, a); other != "" {
		return copied, fmt.Errorf("%s overlaps another authkit with prefix %s in the same site: one of them would never be reached; give each its own prefix", where, other)
	}
	return copied, nil
}

// where names the handler for people.
func (a *AuthKit) where(l *layout) string {
	if l == nil {
		return "authkit (prefix " + a.Prefix + ")"
	}
	return "authkit (" + l.site + ", prefix " + a.Prefix + ")"
}

// hasTrustedProxies: the server has trusted_proxies. Caddy loads them
// before the routes and keeps them in an unexported field; reflection reads
// whether it is set. Should a Caddy version name it otherwise, the check
// passes rather than refuse a config it cannot judge.
func hasTrustedProxies(srv *caddyhttp.Server) bool {
	if len(srv.TrustedProxiesRaw) > 0 {
		return true
	}
	f := reflect.ValueOf(srv).Elem().FieldByName("trustedProxies")
	return !f.IsValid() || f.Kind() != reflect.Interface || !f.IsNil()
}

// prefixes are the prefixes claimed in each scope of the configs loaded,
// so two handlers in one site cannot share one. Entries go with Cleanup.
var prefixes = struct {
	sync.Mutex
	claimed map[any][]*AuthKit
}{claimed: make(map[any][]*AuthKit)}

// claimPrefix claims a's prefix in scope, or returns the prefix of a
// handler there that a's overlaps.
func claimPrefix(scope any, a *AuthKit) string {
	prefixes.Lock()
	defer prefixes.Unlock()
	for _, other := range prefixes.claimed[scope] {
		if under(a.prefixLower, other.prefixLower) || under(other.prefixLower, a.prefixLower) {
			return other.Prefix
		}
	}
	prefixes.claimed[scope] = append(prefixes.claimed[scope], a)
	a.scope = scope
	return ""
}

// under: path is prefix, or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// releasePrefix gives a's prefix back when its config is unloaded.
func releasePrefix(a *AuthKit) {
	if a.scope == nil {
		return
	}
	prefixes.Lock()
	defer prefixes.Unlock()
	kept := prefixes.claimed[a.scope][:0]
	for _, other := range prefixes.claimed[a.scope] {
		if other != a {
			kept = append(kept, other)
		}
	}
	if len(kept) == 0 {
		delete(prefixes.claimed, a.scope)
	} else {
		prefixes.claimed[a.scope] = kept
	}
}
