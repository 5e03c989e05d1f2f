// Package caddyauthkit is a Caddy HTTP handler that gives any web app the backend
// Pica AuthKit needs: the token route the hosted iframe calls, a Passthrough proxy
// that attaches the Pica secret and checks connection ownership, and the caller's
// own connections. The caller's identity always comes from the authentication
// layer in front of it, never from the browser.
package caddyauthkit

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(AuthKit{})
}

// Defaults of the options a user may leave out.
const (
	DefaultAPI                = "https://api.picaos.com"
	DefaultPrefix             = "/authkit"
	DefaultIdentity           = "{http.auth.user.id}"
	DefaultIdentityType       = "user"
	DefaultCORSOrigin         = "https://authkit.picaos.com"
	DefaultOwnershipTTL       = time.Minute
	DefaultOwnershipCacheSize = 100_000
	DefaultTimeout            = 10 * time.Second
	DefaultMaxConcurrent      = 1024
	DefaultMaxBodySize        = 64 << 10
)

// AuthKit serves everything Pica AuthKit needs from a backend, under a path prefix:
//
//   - POST {prefix}/token: the AuthKit token for the caller (what the official Node
//     SDK's AuthKitToken.create returns), with CORS for the hosted iframe;
//   - ANY {prefix}/passthrough/{path}: Pica's Passthrough API through Caddy's own
//     reverse_proxy, with the secret attached and the connection key checked to
//     belong to the caller;
//   - GET {prefix}/connections, DELETE {prefix}/connections/{id}: the caller's
//     own connections; GET {prefix}/connectors: the connectors enabled in AuthKit.
//
// The caller's identity is read from a placeholder set by the authentication layer
// in front ({http.auth.user.id} by default). Requests outside the prefix go to the
// next handler untouched.
type AuthKit struct {
	// The Pica secret key. Use a runtime placeholder such as {env.PICA_SECRET_KEY}
	// or {file./run/secrets/pica}: it stays a placeholder in the config (and so in
	// the admin API and the autosaved config) and is resolved at provision.
	// Required.
	Secret string `json:"secret,omitempty"`

	// Base URL of the Pica API. Default: https://api.picaos.com
	API string `json:"api,omitempty"`

	// Path prefix of the routes. Default: /authkit
	Prefix string `json:"prefix,omitempty"`

	// Placeholder holding the caller's identity, set by the authentication
	// layer in front. Default: {http.auth.user.id}
	Identity string `json:"identity,omitempty"`

	// The identity type: user, team, organization or project, or a placeholder
	// that resolves to one of them. Default: user
	IdentityType string `json:"identity_type,omitempty"`

	// Only accept a header identity (an {http.request.header.*} placeholder) on
	// requests that came through one of the server's trusted_proxies, so that a
	// client that reaches Caddy directly cannot name itself.
	IdentityTrustedProxiesOnly bool `json:"identity_trusted_proxies_only,omitempty"`

	// Origins allowed to call the routes cross-origin; "*" allows any origin.
	// Default: https://authkit.picaos.com
	CORSOrigins []string `json:"cors_origins,omitempty"`

	// Request headers the browser may send besides Content-Type and Authorization.
	CORSHeaders []string `json:"cors_headers,omitempty"`

	// Platforms (the second part of a connection key, e.g. "gmail") that
	// passthrough calls may use. Default: all.
	Platforms []string `json:"platforms,omitempty"`

	// Values of x-pica-action-id that passthrough calls may use. When set, a
	// call without one of them is refused. Default: all.
	Actions []string `json:"actions,omitempty"`

	// Check that a passthrough call's connection key belongs to the caller.
	// Default: true. Turning it off lets any signed-in user use any connection.
	Ownership *bool `json:"ownership,omitempty"`

	// How long a positive ownership answer is cached. Default: 1m
	OwnershipTTL caddy.Duration `json:"ownership_ttl,omitempty"`

	// Most ownership answers kept in the cache (about 100 bytes each).
	// Default: 100000
	OwnershipCacheSize int `json:"ownership_cache_size,omitempty"`

	// Time budget of one call to Pica, retries included. Default: 10s
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Most calls to Pica in flight at once; beyond it callers get 503 with
	// Retry-After. Default: 1024
	MaxConcurrent int `json:"max_concurrent,omitempty"`

	// Largest request body accepted on the token and connection routes, in
	// bytes; larger gets 413. Passthrough bodies are not limited. Default: 65536
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// The reverse_proxy handler for passthrough calls. Left out, it is made
	// from `api`; given, its upstreams and transport default to `api` too.
	ProxyRaw json.RawMessage `json:"proxy,omitempty" caddy:"namespace=http.handlers inline_key=handler"`

	secret         string
	apiURL         *url.URL
	identityHeader string
	ownershipOn    bool
	platforms      map[string]struct{}
	actions        map[string]struct{}

	proxy      *reverseproxy.Handler
	pica       *picaClient
	cors       *corsPolicy
	owners     *ownershipCache
	tokens     *tokenSource
	connectors *responseCache
	metrics    *metrics
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AuthKit) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.authkit",
		New: func() caddy.Module { return new(AuthKit) },
	}
}

// Provision resolves the secret, fills defaults and loads the passthrough proxy.
// It makes no network calls.
func (a *AuthKit) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.setDefaults()

	secret, err := resolveSecret(a.Secret)
	if err != nil {
		return err
	}
	a.secret = secret
	if !strings.Contains(a.Secret, "{") {
		a.logger.Warn("the Pica secret is written into the config; use {env.PICA_SECRET_KEY} or {file.*} so it stays out of the admin API and autosaved config")
	}

	a.apiURL, err = parseAPI(a.API)
	if err != nil {
		return err
	}
	a.identityHeader = headerOfPlaceholder(a.Identity)
	a.ownershipOn = a.Ownership == nil || *a.Ownership
	a.platforms = setOf(a.Platforms)
	a.actions = setOf(a.Actions)
	a.cors = newCORSPolicy(a.CORSOrigins, a.CORSHeaders)

	a.metrics, err = newMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return err
	}
	a.pica = newPicaClient(a.apiURL, a.secret, time.Duration(a.Timeout), a.MaxConcurrent, a.logger, a.metrics)
	a.tokens = newTokenSource(a.pica)
	a.connectors = newResponseCache(30*time.Second, 256)
	a.owners = newOwnershipCache(a.OwnershipCacheSize, time.Duration(a.OwnershipTTL), a.metrics)

	return a.provisionProxy(ctx)
}

func (a *AuthKit) setDefaults() {
	if a.API == "" {
		a.API = DefaultAPI
	}
	if a.Prefix == "" {
		a.Prefix = DefaultPrefix
	}
	a.Prefix = "/" + strings.Trim(a.Prefix, "/")
	if a.Identity == "" {
		a.Identity = DefaultIdentity
	}
	if a.IdentityType == "" {
		a.IdentityType = DefaultIdentityType
	}
	if len(a.CORSOrigins) == 0 {
		a.CORSOrigins = []string{DefaultCORSOrigin}
	}
	if a.OwnershipTTL <= 0 {
		a.OwnershipTTL = caddy.Duration(DefaultOwnershipTTL)
	}
	if a.OwnershipCacheSize <= 0 {
		a.OwnershipCacheSize = DefaultOwnershipCacheSize
	}
	if a.Timeout <= 0 {
		a.Timeout = caddy.Duration(DefaultTimeout)
	}
	if a.MaxConcurrent <= 0 {
		a.MaxConcurrent = DefaultMaxConcurrent
	}
	if a.MaxBodySize <= 0 {
		a.MaxBodySize = DefaultMaxBodySize
	}
}

// resolveSecret expands {env.*} and {file.*} placeholders. Errors name the
// placeholder, never a value.
func resolveSecret(placeholder string) (string, error) {
	if placeholder == "" {
		return "", fmt.Errorf("authkit: secret is required (use {env.PICA_SECRET_KEY})")
	}
	secret := strings.TrimSpace(caddy.NewReplacer().ReplaceAll(placeholder, ""))
	if secret == "" {
		return "", fmt.Errorf("authkit: secret %s is empty", placeholder)
	}
	if strings.ContainsAny(secret, "\r\n\x00") {
		return "", fmt.Errorf("authkit: secret %s contains control characters", placeholder)
	}
	return secret, nil
}

func parseAPI(api string) (*url.URL, error) {
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("authkit: api %q must be an absolute http(s) URL", api)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("authkit: api %q must not carry a query, fragment or user info", api)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// provisionProxy loads the passthrough reverse_proxy, with its upstream and
// transport defaulting to the Pica API, and wraps its transport so the secret is
// added to the outgoing copy of each request only.
func (a *AuthKit) provisionProxy(ctx caddy.Context) error {
	var rp reverseproxy.Handler
	if len(a.ProxyRaw) > 0 {
		if err := json.Unmarshal(a.ProxyRaw, &rp); err != nil {
			return fmt.Errorf("authkit: decoding proxy: %v", err)
		}
	}
	if len(rp.Upstreams) == 0 && rp.DynamicUpstreamsRaw == nil {
		rp.Upstreams = reverseproxy.UpstreamPool{{Dial: dialAddress(a.apiURL)}}
	}
	if rp.TransportRaw == nil {
		transport := map[string]any{
			"protocol":                "http",
			"response_header_timeout": caddy.Duration(a.Timeout),
		}
		if a.apiURL.Scheme == "https" {
			transport["tls"] = map[string]any{}
		}
		raw, err := json.Marshal(transport)
		if err != nil {
			return err
		}
		rp.TransportRaw = raw
	}
	if rp.LoadBalancing == nil {
		// Retry only when the dial failed, so nothing reached Pica: a retry
		// matcher that never matches stops Caddy's default retry of GETs
		// after a transport error, which could repeat a call and overrun
		// the timeout.
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
		return fmt.Errorf("authkit: loading proxy: %v", err)
	}
	proxy, ok := mod.(*reverseproxy.Handler)
	if !ok {
		return fmt.Errorf("authkit: proxy must be a reverse_proxy handler, not %T", mod)
	}
	proxy.Transport = &picaTransport{next: proxy.Transport, secret: a.secret}
	a.proxy = proxy
	return nil
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

// Validate checks the configuration; it changes nothing.
func (a *AuthKit) Validate() error {
	if !strings.Contains(a.Identity, "{") {
		return fmt.Errorf("authkit: identity %q must be a placeholder set by the authentication layer, such as {http.auth.user.id}", a.Identity)
	}
	if !strings.Contains(a.IdentityType, "{") && !validIdentityType(a.IdentityType) {
		return fmt.Errorf("authkit: identity_type %q must be user, team, organization, project or a placeholder", a.IdentityType)
	}
	if a.IdentityTrustedProxiesOnly && a.identityHeader == "" {
		return fmt.Errorf("authkit: identity_trusted_proxies_only needs a header identity ({http.request.header.*})")
	}
	for _, origin := range a.CORSOrigins {
		if err := validateOrigin(origin); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup releases the caches; Caddy cleans up the guest reverse_proxy itself.
func (a *AuthKit) Cleanup() error {
	if a.owners != nil {
		a.owners.clear()
	}
	if a.connectors != nil {
		a.connectors.clear()
	}
	if a.pica != nil {
		a.pica.close()
	}
	return nil
}

func setOf(values []string) map[string]struct{} {
	if len(values) == 0 {
		return nil
	}
	set := make(map[string]struct{}, len(values))
	for _, v := range values {
		set[v] = struct{}{}
	}
	return set
}

// Interface guards
var (
	_ caddy.Provisioner           = (*AuthKit)(nil)
	_ caddy.Validator             = (*AuthKit)(nil)
	_ caddy.CleanerUpper          = (*AuthKit)(nil)
	_ caddyhttp.MiddlewareHandler = (*AuthKit)(nil)
)
