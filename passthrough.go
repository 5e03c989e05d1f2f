package caddyauthkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

const (
	passthroughBase      = "/v1/passthrough/"
	connectionKeyHeader  = "X-Pica-Connection-Key"
	actionIDHeader       = "X-Pica-Action-Id"
	passthroughHeaderPre = "X-Pica-Passthrough-"
	maxConnectionKeyLen  = 512
)

// servePassthrough proxies a call to Pica's Passthrough API once the path is
// confined, the allow-lists pass and the connection is the caller's.
func (a *AuthKit) servePassthrough(w http.ResponseWriter, r *http.Request, id identity, rest string) error {
	upstreamPath, err := confinePath(rest)
	if err != nil {
		return err
	}
	connectionKey := r.Header.Get(connectionKeyHeader)
	if connectionKey == "" {
		return newError(http.StatusBadRequest, "connection_key_missing", "the x-pica-connection-key header is required")
	}
	if len(connectionKey) > maxConnectionKeyLen || strings.ContainsFunc(connectionKey, isControl) {
		return newError(http.StatusBadRequest, "connection_key_invalid", "the x-pica-connection-key header is not a connection key")
	}
	if a.platforms != nil {
		if _, ok := a.platforms[keyPlatform(connectionKey)]; !ok {
			return newError(http.StatusForbidden, "platform_not_allowed", "this platform is not allowed through the gateway")
		}
	}
	if a.actions != nil {
		if _, ok := a.actions[r.Header.Get(actionIDHeader)]; !ok {
			return newError(http.StatusForbidden, "action_not_allowed", "this x-pica-action-id is not allowed through the gateway")
		}
	}
	if a.ownershipOn {
		if err := a.checkOwnership(r.Context(), id, connectionKey); err != nil {
			return err
		}
	}

	a.stripClientHeaders(r.Header)
	r.URL.RawPath = a.apiURL.EscapedPath() + passthroughBase + rest
	r.URL.Path = a.apiURL.Path + upstreamPath

	tw := &trackingWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err = a.proxy.ServeHTTP(tw, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	if err != nil && !tw.wrote {
		return err
	}
	a.metrics.request("passthrough", tw.status)
	if err != nil {
		// The answer has begun: Caddy logs the failure, nothing more can be said.
		return streamError{err}
	}
	return nil
}

// streamError is a failure after the response started; it goes to Caddy as is.
type streamError struct{ error }

func (e streamError) Unwrap() error { return e.error }

// stripClientHeaders removes what must not reach Pica, or the third party
// behind it: the app's own credentials, any secret the client tries to send,
// the identity header and the client's forwarding headers.
func (a *AuthKit) stripClientHeaders(h http.Header) {
	for name := range h {
		lower := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		switch {
		case lower == "cookie", lower == "authorization", lower == "proxy-authorization",
			lower == "x-pica-secret", lower == "forwarded", lower == "x-real-ip",
			strings.HasPrefix(lower, "x-forwarded-"),
			a.identityHeader != "" && strings.EqualFold(lower, a.identityHeader):
			delete(h, name)
		}
	}
}

// confinePath turns the escaped path after {prefix}/passthrough/ into the
// decoded upstream path, refusing anything that could leave /v1/passthrough/:
// dot segments (also "..;" and fullwidth dots), backslashes, and escapes of
// dots, slashes, backslashes, percent signs (double encoding) and controls.
func confinePath(rest string) (string, error) {
	refuse := func(why string) (string, error) {
		return "", newError(http.StatusBadRequest, "path_invalid", "the passthrough path "+why)
	}
	if rest == "" {
		return refuse("is empty")
	}
	if strings.ContainsAny(rest, `\`) {
		return refuse("contains a backslash")
	}
	var decoded strings.Builder
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c < 0x21 || c == 0x7f {
			return refuse("contains a control character or space")
		}
		if c != '%' {
			decoded.WriteByte(c)
			continue
		}
		if i+2 >= len(rest) || !isHex(rest[i+1]) || !isHex(rest[i+2]) {
			return refuse("contains a malformed escape")
		}
		b := unhex(rest[i+1])<<4 | unhex(rest[i+2])
		if b == '.' || b == '/' || b == '\\' || b == '%' || b < 0x20 || b == 0x7f {
			return refuse("contains an encoded dot, slash, backslash, percent sign or control character")
		}
		decoded.WriteByte(b)
		i += 2
	}
	if !utf8.ValidString(decoded.String()) {
		return refuse("is not UTF-8") // overlong encodings of dots among them
	}
	for segment := range strings.SplitSeq(decoded.String(), "/") {
		segment, _, _ = strings.Cut(segment, ";")
		if strings.ContainsAny(segment, "\uff0e\u2024\ufe52") {
			segment = lookalikeDots.Replace(segment)
		}
		if segment == "." || segment == ".." {
			return refuse("contains a dot segment")
		}
	}
	upstream := passthroughBase + decoded.String()
	if !strings.HasPrefix(path.Clean(upstream)+"/", passthroughBase) {
		return refuse("leaves the passthrough API")
	}
	return upstream, nil
}

// lookalikeDots are characters some servers fold into "." (fullwidth,
// one-dot leader, small full stop).
var lookalikeDots = strings.NewReplacer("\uff0e", ".", "\u2024", ".", "\ufe52", ".")

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// keyPlatform is the platform named by a connection key
// ({env}::{platform}::default::{hex}[|identity]).
func keyPlatform(key string) string {
	parts := strings.SplitN(key, "::", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

// picaTransport wraps the proxy's transport. The secret goes on a copy of the
// outgoing request only, so it never sits on a request Caddy logs; answers are
// adapted for the browser on the way back.
type picaTransport struct {
	next   http.RoundTripper
	secret string
}

func (t *picaTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	// Caddy's own forwarding headers would tell the third party behind Pica
	// the user's address and the app's host.
	for name := range out.Header {
		if strings.HasPrefix(name, "X-Forwarded-") || name == "Via" {
			delete(out.Header, name)
		}
	}
	out.Header.Set("X-Pica-Secret", t.secret)
	res, err := t.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	adaptResponse(res, t.secret)
	return res, nil
}

// adaptResponse restores the third party's Content-Type, and replaces an
// error of Pica's own (one without x-pica-passthrough-* headers) with the
// gateway's envelope: Pica rejecting the secret is the gateway's fault (502),
// a rate limit stays 429, Pica failing is 502.
func adaptResponse(res *http.Response, secret string) {
	for name := range res.Header {
		if strings.HasPrefix(name, "Access-Control-") || name == "Set-Cookie" {
			delete(res.Header, name)
		}
	}
	if ct := res.Header.Get(passthroughHeaderPre + "Content-Type"); ct != "" {
		res.Header.Set("Content-Type", ct)
		return
	}
	if res.StatusCode < 400 || fromThirdParty(res.Header) {
		return
	}

	var picaErr struct {
		Message string `json:"message"`
	}
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	_ = json.Unmarshal(raw, &picaErr)
	if strings.Contains(picaErr.Message, secret) || len(picaErr.Message) > 300 {
		picaErr.Message = ""
	}

	var err error
	switch status := res.StatusCode; {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		err = newError(http.StatusBadGateway, "pica_rejected_secret", "Pica rejected the gateway's secret key")
	case status == http.StatusTooManyRequests:
		err = retryLater(http.StatusTooManyRequests, "pica_rate_limited", "Pica is rate-limiting this account", retryAfterSeconds(res.Header))
	case status >= 500:
		err = newError(http.StatusBadGateway, "pica_unavailable", fmt.Sprintf("Pica answered %d", status))
	default:
		message := picaErr.Message
		if message == "" {
			message = http.StatusText(status)
		}
		err = newError(status, "pica_refused", "Pica refused the call: "+message)
	}
	replaceWithError(res, errorBody(err))
}

func fromThirdParty(h http.Header) bool {
	for name := range h {
		if strings.HasPrefix(name, passthroughHeaderPre) {
			return true
		}
	}
	return false
}

func replaceWithError(res *http.Response, body *apiError) {
	encoded, _ := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{body})
	res.StatusCode = body.Status
	res.Status = strconv.Itoa(body.Status) + " " + http.StatusText(body.Status)
	res.Header = http.Header{
		"Content-Type":   {"application/json"},
		"Content-Length": {strconv.Itoa(len(encoded))},
		"Cache-Control":  {"no-store"},
	}
	if body.retryAfter > 0 {
		res.Header.Set("Retry-After", strconv.Itoa(body.retryAfter))
	}
	res.ContentLength = int64(len(encoded))
	res.Body = io.NopCloser(bytes.NewReader(encoded))
}

// trackingWriter records whether and what the proxy wrote, so a failure
// before the response started can still be answered in the envelope.
type trackingWriter struct {
	*caddyhttp.ResponseWriterWrapper
	wrote  bool
	status int
}

func (w *trackingWriter) WriteHeader(status int) {
	if status >= 200 {
		w.wrote, w.status = true, status
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.wrote, w.status = true, http.StatusOK
	}
	return w.ResponseWriterWrapper.Write(b)
}
