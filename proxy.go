package caddyauthkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

// provisionProxy loads the guest reverse_proxy, with its upstream and
// transport defaulting to the vendor's API, and wraps its transport so the
// secret and the checked headers are added to the outgoing copy of each
// request only. It returns the transport for the module's own calls.
func (a *AuthKit) provisionProxy(ctx caddy.Context) (http.RoundTripper, error) {
	var rp reverseproxy.Handler
	if len(a.ProxyRaw) > 0 {
		var kind struct {
			Handler string `json:"handler"`
		}
		if err := json.Unmarshal(a.ProxyRaw, &kind); err != nil || kind.Handler != "reverse_proxy" {
			return nil, fmt.Errorf("authkit: proxy must be a reverse_proxy handler")
		}
		if err := json.Unmarshal(a.ProxyRaw, &rp); err != nil {
			return nil, fmt.Errorf("authkit: decoding proxy: %v", err)
		}
	}
	if len(rp.Upstreams) == 0 && rp.DynamicUpstreamsRaw == nil {
		rp.Upstreams = reverseproxy.UpstreamPool{{Dial: dialAddress(a.apiURL)}}
	}
	transport := reverseproxy.HTTPTransport{ResponseHeaderTimeout: a.Timeout}
	if rp.TransportRaw != nil {
		var given struct {
			Protocol string `json:"protocol"`
		}
		if json.Unmarshal(rp.TransportRaw, &given) != nil || given.Protocol != "http" {
			return nil, fmt.Errorf("authkit: the proxy's transport must be http")
		}
		transport = reverseproxy.HTTPTransport{}
		if err := json.Unmarshal(rp.TransportRaw, &transport); err != nil {
			return nil, fmt.Errorf("authkit: decoding the proxy's transport: %v", err)
		}
		if transport.ResponseHeaderTimeout == 0 {
			transport.ResponseHeaderTimeout = a.Timeout // as promised by `timeout`
		}
	}
	if a.apiURL.Scheme == "https" && transport.TLS == nil {
		// An https api is spoken to over TLS, also by a transport given
		// only to set timeouts: never the secret in clear by omission.
		transport.TLS = new(reverseproxy.TLSConfig)
	}
	rp.TransportRaw = caddyconfig.JSONModuleObject(transport, "protocol", "http", nil)
	if rp.LoadBalancing == nil {
		// Retry only when the dial failed, so nothing reached the vendor: a
		// retry matcher that never matches stops Caddy's default retry of
		// GETs after a transport error, which could repeat a call.
		rp.LoadBalancing = &reverseproxy.LoadBalancing{
			Retries:     2,
			TryInterval: caddy.Duration(100 * time.Millisecond),
			RetryMatchRaw: caddyhttp.RawMatcherSets{
				{"expression": json.RawMessage(`"false"`)},
			},
		}
	}
	a.ProxyRaw = caddyconfig.JSONModuleObject(rp, "handler", "reverse_proxy", nil)

	mod, err := ctx.LoadModule(a, "ProxyRaw")
	if err != nil {
		return nil, fmt.Errorf("authkit: loading proxy: %v", err)
	}
	a.proxy = mod.(*reverseproxy.Handler)
	caddys := a.proxy.Transport
	a.proxy.Transport = &vendorTransport{next: caddys, provider: a.provider, secret: a.secret, logger: a.logger, metrics: a.metrics}
	return ownCallTransport{caddys}, nil
}

// ownCallTransport carries the module's own calls to the vendor over the
// proxy's transport. Caddy's transport reads a Replacer from the request's
// context and may write to its vars (the forward proxy it used), so each
// call gets a fresh pair: the module's calls run on workers, and a request's
// own pair belongs to its goroutine.
type ownCallTransport struct{ next http.RoundTripper }

func (t ownCallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, make(map[string]any))
	return t.next.RoundTrip(req.WithContext(ctx))
}

func dialAddress(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// vendorTransport wraps the proxy's transport. The secret and the checked
// connection key and action id go on a copy of the outgoing request only, so
// they never sit on a request Caddy logs, and are set after Caddy removed
// hop-by-hop headers; answers are adapted for the browser on the way back.
type vendorTransport struct {
	next     http.RoundTripper
	provider *vendor.Provider
	secret   string
	logger   *zap.Logger
	metrics  *metrics
}

func (t *vendorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	call, _ := req.Context().Value(checkedCallKey{}).(*checkedCall)
	if call == nil {
		// Caddy's own requests (active health checks): nothing is added,
		// the secret least of all.
		return t.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	for name := range out.Header {
		// Caddy's own forwarding headers would tell the third party the
		// user's address and the app's host.
		if strings.HasPrefix(name, "X-Forwarded-") || name == "Via" || name == "Trailer" || matchesAny(name, transportHeaders) {
			delete(out.Header, name)
		}
	}
	// A trailer is a header the gateway never checked: none is sent.
	out.Trailer = nil
	out.Header.Set(t.provider.SecretHeader, t.secret)
	out.Header.Set(t.provider.ConnectionKeyHeader, call.connectionKey)
	if call.actionID != "" {
		out.Header.Set(t.provider.ActionIDHeader, call.actionID)
	}
	start := time.Now()
	endSpan := startVendorSpan(out, vendor.EndpointPassthrough, 1)
	res, err := t.next.RoundTrip(out)
	if err != nil {
		t.metrics.vendorCall(vendor.EndpointPassthrough, "error", time.Since(start))
		endSpan(0, err)
		return nil, err
	}
	defer func() { endSpan(res.StatusCode, nil) }()
	vendorStatus := res.StatusCode
	failure := adaptResponse(res, t.secret, call)
	outcome := outcomeRelayed
	if failure != nil {
		outcome = strconv.Itoa(vendorStatus)
		t.metrics.failed(passthroughRoute.name, failure.Code)
	}
	t.metrics.vendorCall(vendor.EndpointPassthrough, outcome, time.Since(start))
	if failure != nil && failure.Status >= 500 {
		t.logger.Error("vendor failed a passthrough call",
			zap.Int("vendor_status", vendorStatus),
			zap.String("code", failure.Code),
			zap.String("vendor_correlation_id", failure.CorrelationID),
			zap.String("uuid", call.requestID))
	}
	return res, nil
}

// outcomeRelayed is the latency metric's outcome of a passthrough answer
// that is a third party's, relayed with its own status, and so says nothing
// of the vendor's health.
const outcomeRelayed = "relayed"

// ProxyProtocolEnabled and OverrideHealthCheckScheme pass on what Caddy's
// proxy asks of the transport it was given (proxy_protocol, health checks).
func (t *vendorTransport) ProxyProtocolEnabled() bool {
	ppt, ok := t.next.(reverseproxy.ProxyProtocolTransport)
	return ok && ppt.ProxyProtocolEnabled()
}

func (t *vendorTransport) OverrideHealthCheckScheme(base *url.URL, port string) {
	if o, ok := t.next.(reverseproxy.HealthCheckSchemeOverriderTransport); ok {
		o.OverrideHealthCheckScheme(base, port)
	}
}

// adaptResponse restores the third party's Content-Type, flags a third
// party's 401 as a grant to renew, and replaces an error of the vendor's own
// (one without renamed third-party headers) with the gateway's envelope,
// which it returns.
func adaptResponse(res *http.Response, secret string, call *checkedCall) *vendor.Error {
	for name := range res.Header {
		if strings.HasPrefix(name, "Access-Control-") || name == "Set-Cookie" {
			delete(res.Header, name)
		}
	}
	// A user's answer, served on the app's origin: no shared cache keeps
	// it, and no browser reads it as another type than it says.
	res.Header.Set("Cache-Control", "private, no-store")
	res.Header.Set("X-Content-Type-Options", "nosniff")
	if vendor.FromThirdParty(res.Header) {
		for name, values := range res.Header {
			if strings.EqualFold(vendor.ThirdPartyHeader(name), "Content-Type") {
				res.Header["Content-Type"] = values
			}
		}
		if res.StatusCode == http.StatusUnauthorized && call.platform != "" {
			res.Header.Set("AuthKit-Reconnect", call.platform)
		}
		return nil
	}
	if res.StatusCode < 400 {
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	failure := vendor.Failure(res.StatusCode, res.Header, raw, secret)
	replaceWithError(res, errorBody(failure))
	return failure
}

func replaceWithError(res *http.Response, body *apiError) {
	encoded := encodeError(body)
	res.StatusCode = body.Status
	res.Status = strconv.Itoa(body.Status) + " " + http.StatusText(body.Status)
	res.Header = http.Header{}
	setEnvelopeHeaders(res.Header, body, len(encoded))
	res.ContentLength = int64(len(encoded))
	res.Body = io.NopCloser(bytes.NewReader(encoded))
}
