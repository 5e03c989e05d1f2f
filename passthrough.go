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
)

const maxConnectionKeyLen = 512

// checkedCall is what the gateway checked of a passthrough call: the
// transport sets exactly these on the request that leaves, after Caddy's
// proxy has removed hop-by-hop headers, so nothing can differ from what was
// checked.
type checkedCall struct {
	connectionKey string
	actionID      string
	platform      string
	connectionID  string // known when X-AuthKit-Connection named the connection
	requestID     string // Caddy's, for the transport's log line
}

type checkedCallKey struct{}

// servePassthrough proxies a call to the vendor's Passthrough API once the
// path is confined, the headers are unambiguous, the allow-lists pass and
// the connection is the caller's.
func (a *AuthKit) servePassthrough(ctx context.Context, w http.ResponseWriter, r *http.Request, id identity, rest string) (err error) {
	rec := newAudit(passthroughRoute, id)
	defer a.audit(r, rec, &err)
	upstreamPath, err := confinePath(rest)
	if err != nil {
		return err
	}
	if err := refuseHopByHop(r.Header); err != nil {
		return err
	}
	call, err := a.checkPassthrough(ctx, r, id)
	if err != nil {
		return err
	}
	call.requestID = requestIDOf(ctx)
	rec.platform, rec.connectionID, rec.path = call.platform, call.connectionID, upstreamPath
	if err := pinBody(r, call); err != nil {
		return err
	}
	release, err := a.pica.acquire()
	if err != nil {
		return err
	}
	defer release()

	stripClientHeaders(r.Header, a.identityHeader)
	r.URL.RawPath = a.apiURL.EscapedPath() + passthroughBase + rest
	r.URL.Path = a.apiURL.Path + upstreamPath
	body := &bodyReader{ReadCloser: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	r = r.WithContext(context.WithValue(r.Context(), checkedCallKey{}, call))

	tw := &trackingWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err = a.proxy.ServeHTTP(tw, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	if !tw.wrote && (err != nil || tw.canceled) {
		if body.failed() {
			// Go cancels the request when its body breaks, and may keep
			// the connection: what follows on it is not a request.
			w.Header().Set("Connection", "close")
			return errBodyInvalid()
		}
		if err == nil {
			return errClientGone
		}
		return err
	}
	a.metrics.request(r, passthroughRoute.name, tw.status)
	rec.status, rec.bytes, rec.reconnect = tw.status, tw.bytes, w.Header().Get("AuthKit-Reconnect") != ""
	if rec.reconnect {
		a.metrics.reconnects.Inc()
	}
	if err != nil {
		// The answer has begun: Caddy logs the failure, nothing more can be said.
		return streamError{err}
	}
	return nil
}

// checkPassthrough reads the connection key and action id (under either
// dialect's name, each exactly once), and checks them against the
// allow-lists and the caller's ownership.
func (a *AuthKit) checkPassthrough(ctx context.Context, r *http.Request, id identity) (*checkedCall, error) {
	key, err := singleValue(r.Header, connectionKeyHeaders)
	if err != nil {
		return nil, err
	}
	actionID, err := singleValue(r.Header, actionIDHeaders)
	if err != nil {
		return nil, err
	}
	keyless, err := singleValue(r.Header, []string{keylessHeader})
	if err != nil {
		return nil, err
	}
	connectionID := ""
	if keyless != "" {
		if key != "" {
			return nil, newError(http.StatusBadRequest, "header_ambiguous", "send either a connection key or "+keylessHeader+", not both")
		}
		resolved, err := a.resolveConnection(ctx, id, keyless)
		if err != nil {
			return nil, err
		}
		key, connectionID = resolved.connectionKey, resolved.connectionID
	}
	if key == "" {
		return nil, newError(http.StatusBadRequest, "connection_key_missing", "the "+a.provider.connectionKeyHeader+" header is required")
	}
	if len(key) > maxConnectionKeyLen || strings.ContainsFunc(key, isControl) {
		return nil, newError(http.StatusBadRequest, "connection_key_invalid", "the connection key header is not a connection key")
	}
	if strings.ContainsFunc(actionID, isControl) {
		return nil, newError(http.StatusBadRequest, "action_id_invalid", "the action id header is not an action id")
	}
	call := &checkedCall{connectionKey: key, actionID: actionID, platform: keyPlatform(key), connectionID: connectionID}
	if a.platforms != nil {
		if _, ok := a.platforms[call.platform]; !ok {
			return nil, newError(http.StatusForbidden, "platform_not_allowed", "this platform is not allowed through the gateway")
		}
	}
	if a.actions != nil {
		if _, ok := a.actions[actionID]; !ok {
			return nil, newError(http.StatusForbidden, "action_not_allowed", "this action id is not allowed through the gateway")
		}
	}
	if a.ownershipOn && connectionID == "" { // a resolved key is the caller's by construction
		if err := a.checkOwnership(ctx, id, key); err != nil {
			return nil, err
		}
	}
	return call, nil
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
var transportHeaders = slices.Concat(connectionKeyHeaders, actionIDHeaders, secretHeaders)

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
// party behind it: the app's own credentials, the identity header, the
// client's forwarding headers, and every spelling of the headers the
// transport sets from what was checked (secret, connection key, action id).
func stripClientHeaders(h http.Header, identityHeader string) {
	for name := range h {
		lower := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		switch {
		case lower == "cookie", lower == "authorization", lower == "proxy-authorization",
			lower == "forwarded", lower == "x-real-ip", strings.HasPrefix(lower, "x-forwarded-"),
			matchesAny(name, transportHeaders), matchesAny(name, gatewayOwnHeaders),
			identityHeader != "" && strings.EqualFold(lower, identityHeader):
			delete(h, name)
		}
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// streamError is a failure after the response started; it goes to Caddy as is.
type streamError struct{ error }

func (e streamError) Unwrap() error { return e.error }

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

func errBodyInvalid() *apiError {
	return newError(http.StatusBadRequest, "body_invalid", "the request body could not be read")
}

// trackingWriter records whether and what the proxy wrote, so a failure
// before the response started can still be answered in the envelope.
type trackingWriter struct {
	*caddyhttp.ResponseWriterWrapper
	wrote    bool
	canceled bool
	status   int
	bytes    int64
}

func (w *trackingWriter) WriteHeader(status int) {
	if status == 499 && !w.wrote {
		// Caddy's proxy writes 499 when the request was cancelled, also
		// when the client's body broke: servePassthrough answers instead.
		w.canceled = true
		return
	}
	if status >= 200 {
		w.wrote, w.status = true, status
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.wrote, w.status = true, http.StatusOK
	}
	n, err := w.ResponseWriterWrapper.Write(b)
	w.bytes += int64(n)
	return n, err
}
