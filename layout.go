package caddyauthkit

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"

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

// before are the handlers that run before a, in the routes loaded ahead
// of it at each level, and, as raw JSON, those ahead of it in the routes
// being loaded (the Caddyfile puts directives without matchers in one
// route, which Caddy loads as a whole).
func (l *layout) before(a *AuthKit) (loaded []caddyhttp.MiddlewareHandler, raw []map[string]any) {
	for _, list := range l.lists {
		i := loading(list)
		if i < 0 {
			i = len(list)
		}
		for _, rt := range list[:i] {
			loaded = append(loaded, rt.Handlers...)
		}
		if i == len(list) {
			continue
		}
		for _, h := range list[i].HandlersRaw {
			var m map[string]any
			if json.Unmarshal(h, &m) != nil {
				continue
			}
			if m["handler"] == "authkit" && a.isConfig(h) {
				break
			}
			raw = append(raw, m)
		}
	}
	return loaded, raw
}

// isConfig: raw is the JSON of a handler configured as a.
func (a *AuthKit) isConfig(raw json.RawMessage) bool {
	other := new(AuthKit)
	if json.Unmarshal(raw, other) != nil || other.setDefaults() != nil {
		return false
	}
	return strings.EqualFold(other.Prefix, a.Prefix)
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
func (a *AuthKit) checkPlace(ctx caddy.Context) (where string, copied bool, err error) {
	place := layoutOf(ctx)
	where = a.where(place)
	if place == nil {
		return where, false, nil
	}
	copied, err = a.checkLayout(place)
	if observeLayout != nil {
		observeLayout(a, place, copied, err) // the doctor reports every handler
		err = nil
	}
	return where, copied, err
}

// observeLayout, when set, hears every handler's layout as it is
// provisioned, and layout errors do not fail the provisioning: the doctor
// uses it to report on every handler of a config at once.
var observeLayout func(a *AuthKit, l *layout, copied bool, err error)

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
// It also says whether a forward_auth before the handler copies the
// identity header, which makes a header identity safe.
func (a *AuthKit) checkLayout(l *layout) (copied bool, err error) {
	where := a.where(l)
	stripped := fmt.Errorf("%s is inside handle_path or after uri strip_prefix, so it does not see the path the site's matchers saw: put it in handle (not handle_path), and set prefix to the full path", where)
	loaded, raw := l.before(a)
	for _, h := range loaded {
		switch h := h.(type) {
		case *rewrite.Rewrite:
			if h.StripPathPrefix != "" || h.StripPathSuffix != "" {
				return false, stripped
			}
		case *reverseproxy.Handler:
			copied = copied || a.identityHeader != "" && copiesHeader(h, a.identityHeader)
		}
	}
	for _, h := range raw { // not loaded yet: read as configured
		if h["handler"] == "rewrite" && (h["strip_path_prefix"] != nil || h["strip_path_suffix"] != nil) {
			return false, stripped
		}
		copied = copied || a.identityHeader != "" && h["handler"] == "reverse_proxy" && copiesHeaderRaw(h, a.identityHeader)
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

// copiesHeader: rp is a forward_auth that copies header from the auth
// service's answer, first deleting the client's own (Caddy 2.11.2 on).
func copiesHeader(rp *reverseproxy.Handler, header string) bool {
	var deleted, set bool
	for _, hr := range rp.HandleResponse {
		for _, rt := range hr.Routes {
			for _, h := range rt.Handlers {
				ops, ok := h.(*headers.Handler)
				if !ok || ops.Request == nil {
					continue
				}
				for _, name := range ops.Request.Delete {
					deleted = deleted || strings.EqualFold(name, header)
				}
				for name := range ops.Request.Set {
					set = set || strings.EqualFold(name, header)
				}
			}
		}
	}
	return deleted && set
}

// copiesHeaderRaw is copiesHeader of a reverse_proxy not loaded yet.
func copiesHeaderRaw(rp map[string]any, header string) bool {
	var deleted, set bool
	for _, hr := range list(rp["handle_response"]) {
		for _, rt := range list(field(hr, "routes")) {
			for _, h := range list(field(rt, "handle")) {
				if field(h, "handler") != "headers" {
					continue
				}
				request := field(h, "request")
				for _, name := range list(field(request, "delete")) {
					name, _ := name.(string)
					deleted = deleted || strings.EqualFold(name, header)
				}
				set_, _ := field(request, "set").(map[string]any)
				for name := range set_ {
					set = set || strings.EqualFold(name, header)
				}
			}
		}
	}
	return deleted && set
}

func field(v any, name string) any {
	m, _ := v.(map[string]any)
	return m[name]
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
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
