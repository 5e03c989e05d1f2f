package caddyauthkit

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Preflight header values, built once. Header.Add on them copies (their
// capacity is their length), so sharing them across responses is safe.
var (
	// Browsers cache a preflight answer this long at most (Chrome caps it at 2h).
	maxAgeValue = []string{"7200"}
)

// corsPolicy answers preflights and adds the origin headers to every response.
// An origin that is not allowed gets no Access-Control-Allow-* header at all.
type corsPolicy struct {
	anyOrigin    bool
	origins      map[string]struct{}
	allowHeaders string

	// routeHeaders is allowHeaders plus a route's own headers, by the latter.
	routeHeaders map[string]string
}

func newCORSPolicy(origins, headers []string) *corsPolicy {
	p := &corsPolicy{origins: make(map[string]struct{}, len(origins))}
	for _, o := range origins {
		if o == "*" {
			p.anyOrigin = true
			continue
		}
		p.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = struct{}{}
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
	p.allowHeaders = strings.Join(allow, ", ")
	p.routeHeaders = map[string]string{
		"":                       p.allowHeaders,
		passthroughRoute.headers: p.allowHeaders + ", " + passthroughRoute.headers,
	}
	return p
}

// allowOrigin sets the origin headers of an actual response and reports
// whether the request's origin is allowed.
func (p *corsPolicy) allowOrigin(h http.Header, origin string) bool {
	h.Add("Vary", "Origin")
	if origin == "" {
		return false
	}
	allowed := "*"
	if !p.anyOrigin {
		if _, ok := p.origins[strings.ToLower(origin)]; !ok {
			return false
		}
		allowed = origin
	}
	h.Set("Access-Control-Allow-Origin", allowed)
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	return true
}

// preflight answers an OPTIONS request for a route that allows methods.
// extraHeaders are request headers that route itself needs (e.g. the
// connection key on passthrough).
func (p *corsPolicy) preflight(w http.ResponseWriter, r *http.Request, methods, extraHeaders string) {
	h := w.Header()
	h.Set("Allow", methods)
	if p.allowOrigin(h, r.Header.Get("Origin")) {
		h["Vary"] = append(h["Vary"], "Access-Control-Request-Method", "Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", methods)
		allow, ok := p.routeHeaders[extraHeaders]
		if !ok {
			allow = p.allowHeaders + ", " + extraHeaders
		}
		h.Set("Access-Control-Allow-Headers", allow)
		h["Access-Control-Max-Age"] = maxAgeValue
		if strings.EqualFold(r.Header.Get("Access-Control-Request-Private-Network"), "true") {
			h.Set("Access-Control-Allow-Private-Network", "true")
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
