package caddyauthkit

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// corsPolicy answers preflights and adds the origin headers to every response.
// An origin that is not allowed gets no Access-Control-Allow-* header at all.
type corsPolicy struct {
	anyOrigin bool
	// origins maps each allowed origin, lowercased, to its header value.
	origins map[string]string
	// allowHeaders is the Access-Control-Allow-Headers value of each route.
	allowHeaders map[*route]string
}

// Header values are strings, and each answer gets slices of its own: a
// `header` directive after authkit edits a response's values in place,
// which must never reach another response, or the route table.
const (
	exposeHeaders = "Retry-After, AuthKit-Reconnect"
	// Browsers cache a preflight answer this long at most (Chrome caps it at 2h).
	maxAge = "7200"
)

// preflightVary names what a preflight answer depends on.
const preflightVary = "Origin, Access-Control-Request-Private-Network"

func newCORSPolicy(origins, headers []string) *corsPolicy {
	p := &corsPolicy{origins: make(map[string]string, len(origins))}
	for _, o := range origins {
		if o == "*" {
			p.anyOrigin = true
			continue
		}
		o = strings.ToLower(strings.TrimSuffix(o, "/"))
		p.origins[o] = o
	}
	allow := []string{"Content-Type", "Authorization"}
	seen := map[string]bool{"content-type": true, "authorization": true}
	extra := append([]string(nil), headers...)
	sort.Strings(extra)
	for _, h := range extra {
		if !seen[strings.ToLower(h)] {
			seen[strings.ToLower(h)] = true
			allow = append(allow, h)
		}
	}
	base := strings.Join(allow, ", ")
	p.allowHeaders = make(map[*route]string, len(allRoutes))
	for _, rt := range allRoutes {
		value := base
		if rt.headers != "" {
			value += ", " + rt.headers
		}
		p.allowHeaders[rt] = value
	}
	return p
}

// allowOrigin sets the origin headers of an actual response.
func (p *corsPolicy) allowOrigin(h http.Header, origin string) {
	value, ok := p.originValue(origin)
	v := [...]string{"Origin", value, exposeHeaders} // as in preflight
	if vary := h["Vary"]; len(vary) > 0 {
		h["Vary"] = append(vary, "Origin")
	} else {
		h["Vary"] = v[0:1:1]
	}
	if ok {
		h["Access-Control-Allow-Origin"] = v[1:2:2]
		h["Access-Control-Expose-Headers"] = v[2:3:3]
	}
}

func (p *corsPolicy) originValue(origin string) (string, bool) {
	if origin == "" {
		return "", false
	}
	if p.anyOrigin {
		return "*", true
	}
	value, ok := p.origins[strings.ToLower(origin)]
	return value, ok
}

// preflight answers an OPTIONS request for rt. The answer has only the
// headers a preflight needs: net/http copies each one when the status is
// written.
func (p *corsPolicy) preflight(w http.ResponseWriter, r *http.Request, rt *route) {
	h := w.Header()
	origin, allowed := p.originValue(r.Header.Get("Origin"))
	// The answer's own values, in one array; a full slice expression
	// gives each header its own, so an append copies rather than spills.
	v := [...]string{rt.allow, preflightVary, origin, rt.allow, p.allowHeaders[rt], maxAge, "true"}
	h["Allow"] = v[0:1:1]
	if vary := h["Vary"]; len(vary) > 0 {
		h["Vary"] = append(vary, preflightVary)
	} else {
		h["Vary"] = v[1:2:2]
	}
	if allowed {
		h["Access-Control-Allow-Origin"] = v[2:3:3]
		h["Access-Control-Allow-Methods"] = v[3:4:4]
		h["Access-Control-Allow-Headers"] = v[4:5:5]
		h["Access-Control-Max-Age"] = v[5:6:6]
		if strings.EqualFold(r.Header.Get("Access-Control-Request-Private-Network"), "true") {
			h["Access-Control-Allow-Private-Network"] = v[6:7:7]
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// validateOrigin accepts "*" or a bare scheme://host[:port].
func validateOrigin(origin string) error {
	if origin == "*" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("authkit: cors origin %q must be * or scheme://host[:port]", origin)
	}
	return nil
}
