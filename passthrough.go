package caddyauthkit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddyauthkit/caddyauthkit/internal/inspect"
	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

const maxConnectionKeyLen = 512

// checkedCall is what the gateway checked of a passthrough call: the
// transport sets the key and the action id on the request that leaves,
// after Caddy's proxy has removed hop-by-hop headers, so nothing can differ
// from what was checked.
type checkedCall struct {
	connectionKey string
	actionID      string
	platform      string // for AuthKit-Reconnect
	requestID     string // Caddy's, for the transport's log line
}

type checkedCallKey struct{}

// passthroughHeaders are those the browser may send on passthrough.
var passthroughHeaders = strings.Join(slices.Concat(vendor.ConnectionKeyHeaders, vendor.ActionIDHeaders, []string{keylessHeader}), ", ")

// servePassthrough proxies a call to the vendor's Passthrough API through
// Caddy's reverse_proxy, once the path is confined, the headers are
// unambiguous, the allow-lists pass, the connection is the caller's and the
// body names no other.
func (a *AuthKit) servePassthrough(w *recorder, rq *request) error {
	r := rq.r
	if rq.arg == "" {
		return newError(http.StatusBadRequest, "path_invalid", "the passthrough path must follow "+a.Prefix+"/passthrough/ as written, without doubled slashes or dot segments")
	}
	upstreamPath, err := inspect.Path(rq.arg)
	if err != nil {
		return err
	}
	rq.upstreamPath = upstreamPath
	if err := refuseHopByHop(r.Header); err != nil {
		return err
	}
	call, err := a.checkPassthrough(rq)
	if err != nil {
		return err
	}
	if err := inspect.PinQuery(r.URL.RawQuery, call.connectionKey); err != nil {
		return err
	}
	if err := inspect.PinBody(r, call.connectionKey); err != nil {
		return err
	}
	release, err := a.limiter.Acquire()
	if err != nil {
		return err
	}
	defer release()

	// The headers go from the request reverse_proxy logs at debug too (the
	// access and error logs hold a copy of their own, made before any
	// handler: docs/production.md); the path changes on the request that
	// leaves only.
	stripClientHeaders(r.Header, a.stripped)
	out := r.WithContext(context.WithValue(r.Context(), checkedCallKey{}, call))
	upstream := *r.URL
	upstream.RawPath, upstream.Path = inspect.PassthroughBase+rq.arg, upstreamPath
	out.URL = &upstream
	body := &bodyReader{ReadCloser: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		out.Body = body
	}

	w.proxying = true
	err = a.proxy.ServeHTTP(w, out, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	w.proxying = false
	if w.status == 0 && (err != nil || w.canceled) {
		if body.failed() {
			// Go cancels the request when its body breaks, and may keep
			// the connection: what follows on it is not a request.
			w.Header().Set("Connection", "close")
			return errBodyInvalid()
		}
		if err == nil {
			return errClientGone()
		}
	}
	return err
}

// checkPassthrough reads the connection key and action id (under either
// dialect's name, each exactly once) or the keyless header, and checks them
// against the allow-lists and the caller's ownership.
func (a *AuthKit) checkPassthrough(rq *request) (*checkedCall, error) {
	h := rq.r.Header
	key, err := singleValue(h, vendor.ConnectionKeyHeaders)
	if err != nil {
		return nil, err
	}
	actionID, err := singleValue(h, vendor.ActionIDHeaders)
	if err != nil {
		return nil, err
	}
	keyless, err := singleValue(h, []string{keylessHeader})
	if err != nil {
		return nil, err
	}
	if keyless != "" {
		if key != "" {
			return nil, newError(http.StatusBadRequest, "header_ambiguous", "send either a connection key or "+keylessHeader+", not both")
		}
		if key, rq.connectionID, err = a.owners.resolve(rq.ctx, rq.caller, keyless); err != nil {
			return nil, err
		}
	}
	if key == "" {
		return nil, newError(http.StatusBadRequest, "connection_key_missing", "the "+a.provider.ConnectionKeyHeader+" header is required")
	}
	if len(key) > maxConnectionKeyLen || strings.ContainsFunc(key, isControl) {
		return nil, newError(http.StatusBadRequest, "connection_key_invalid", "the connection key header is not a connection key")
	}
	if strings.ContainsFunc(actionID, isControl) {
		return nil, newError(http.StatusBadRequest, "action_id_invalid", "the action id header is not an action id")
	}
	rq.platform = keyPlatform(key)
	if a.platforms != nil {
		if _, ok := a.platforms[rq.platform]; !ok {
			return nil, errPlatformNotAllowed()
		}
	}
	if a.actions != nil {
		if _, ok := a.actions[actionID]; !ok {
			return nil, newError(http.StatusForbidden, "action_not_allowed", "this action id is not allowed through the gateway")
		}
	}
	if a.ownershipOn && keyless == "" { // a resolved key is the caller's by construction
		if err := a.owners.check(rq.ctx, rq.caller, key); err != nil {
			return nil, err
		}
	}
	return &checkedCall{connectionKey: key, actionID: actionID, platform: rq.platform, requestID: rq.requestID()}, nil
}

// singleValue returns the one value the client gave under any spelling of
// names (either dialect, any case, '_' for '-'), or "" for none. Values that
// differ are refused: a stack behind the gateway might read another one than
// the gateway checked.
func singleValue(h http.Header, names []string) (string, error) {
	var value string
	seen := false
	for name, values := range h {
		if !matchesAny(name, names) {
			continue
		}
		for _, v := range values {
			if seen && v != value {
				return "", newError(http.StatusBadRequest, "header_ambiguous", "the "+names[0]+" header is given more than once, with different values")
			}
			value, seen = v, true
		}
	}
	return strings.TrimSpace(value), nil
}

// matchesAny: name is one of names, in any case, with '_' for '-'.
func matchesAny(name string, names []string) bool {
	normal := strings.ReplaceAll(name, "_", "-")
	for _, n := range names {
		if strings.EqualFold(normal, n) {
			return true
		}
	}
	return false
}

// gatewayHeaders are those the gateway checks or sets on the way to the
// vendor: a Connection header may not name them, or Caddy's proxy would
// remove them after the check.
var gatewayHeaders = append([]string{keylessHeader, "Content-Type", "Content-Length", "Transfer-Encoding", "Host"},
	transportHeaders...)

// gatewayOwnHeaders are for the gateway alone, never the vendor's.
var gatewayOwnHeaders = []string{keylessHeader, ticketHeader}

// transportHeaders are set on the outgoing request by the transport only:
// any spelling the client sent is removed.
var transportHeaders = slices.Concat(vendor.ConnectionKeyHeaders, vendor.ActionIDHeaders, vendor.SecretHeaders)

func refuseHopByHop(h http.Header) error {
	for _, value := range h.Values("Connection") {
		for token := range strings.SplitSeq(value, ",") {
			if matchesAny(strings.TrimSpace(token), gatewayHeaders) {
				return newError(http.StatusBadRequest, "header_invalid", "the Connection header names a header the gateway checks")
			}
		}
	}
	return nil
}

// stripClientHeaders removes what must not reach the vendor, or the third
// party behind it: the app's own credentials and anti-forgery tokens, the
// identity headers and every other header the auth layer set (stripped),
// the client's forwarding headers, where the page was (Origin, Referer),
// a method override (the third party would run another call than the one
// checked), and every spelling of the headers the transport sets from what
// was checked (secret, connection key, action id).
func stripClientHeaders(h http.Header, stripped []string) {
	for name := range h {
		lower := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		switch {
		case lower == "cookie", lower == "authorization", lower == "proxy-authorization",
			lower == "x-csrf-token", lower == "x-xsrf-token", lower == "origin", lower == "referer",
			lower == "forwarded", lower == "x-real-ip", strings.HasPrefix(lower, "x-forwarded-"),
			strings.Contains(lower, "method-override"), lower == "x-http-method",
			matchesAny(name, transportHeaders), matchesAny(name, gatewayOwnHeaders), matchesAny(name, stripped):
			delete(h, name)
		}
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// bodyReader remembers whether reading the client's body failed, so that a
// broken body is the caller's fault (400), not the vendor's outage.
type bodyReader struct {
	io.ReadCloser
	mu  sync.Mutex
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *bodyReader) failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err != nil
}
