// Package caddyauthkit is a Caddy HTTP handler that gives any web app the backend
// One Auth (formerly Pica AuthKit) needs: the token route the hosted iframe calls,
// a Passthrough proxy that attaches the vendor's secret and checks connection
// ownership, and the caller's own connections. The caller's identity always comes
// from the authentication layer in front of it, never from the browser.
package caddyauthkit

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/caddyauthkit/caddyauthkit/internal/cache"
	"github.com/caddyauthkit/caddyauthkit/internal/keys"
	"github.com/caddyauthkit/caddyauthkit/internal/ticket"
	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

func init() {
	caddy.RegisterModule(AuthKit{})
}

// Defaults of the options a user may leave out; the API and the CORS origin
// follow the provider.
const (
	DefaultProvider           = "pica"
	DefaultPrefix             = "/authkit"
	DefaultIdentity           = "{http.auth.user.id}"
	DefaultIdentityType       = "user"
	DefaultOwnershipTTL       = time.Minute
	DefaultTicketTTL          = time.Minute
	DefaultOwnershipCacheSize = 100_000
	DefaultTimeout            = 10 * time.Second
	DefaultMaxConcurrent      = 1024
	DefaultMaxBodySize        = 64 << 10
)

// AuthKit serves everything One Auth (Pica AuthKit) needs from a backend,
// under a path prefix:
//
//   - POST {prefix}/ticket: a short-lived ticket for the caller, which the
//     widget sends instead of the app's own credentials;
//   - POST {prefix}/token: the token the vendor's iframe asks for (by ticket
//     or identity), page by page or merged as Pica's Node SDK returns it,
//     with CORS for the hosted iframe;
//   - ANY {prefix}/passthrough/{path}: the vendor's Passthrough API through
//     Caddy's own reverse_proxy, with the secret attached and the connection
//     checked to belong to the caller, or found by platform (keyless);
//   - GET {prefix}/connections, DELETE {prefix}/connections/{id}: the caller's
//     own connections; GET {prefix}/connectors: the connectors enabled in AuthKit.
//
// The caller's identity is read from a placeholder set by the authentication
// layer in front ({http.auth.user.id} by default). Requests outside the
// prefix go to the next handler untouched. Every token, ticket, passthrough
// call, deletion and denial is written to the audit logger
// http.handlers.authkit.audit and emitted as Caddy events.
type AuthKit struct {
	// The vendor's dialect: "pica" (api.picaos.com) or "one" (api.withone.ai,
	// Pica renamed). The API, the CORS origin and the header names follow it.
	// Default: pica
	Provider string `json:"provider,omitempty"`

	// The vendor's secret key. Use a runtime placeholder such as
	// {env.ONE_SECRET_KEY} or {file./run/secrets/one}: it stays a placeholder in
	// the config (and so in the admin API and the autosaved config) and is
	// resolved at provision. Required.
	Secret string `json:"secret,omitempty"`

	// Base URL of the vendor's API, scheme://host[:port] without a path.
	// Default: https://api.picaos.com, or https://api.withone.ai for One.
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
	// Default: the vendor's iframe, https://authkit.picaos.com or, for One,
	// https://auth.withone.ai
	CORSOrigins []string `json:"cors_origins,omitempty"`

	// Request headers the browser may send besides Content-Type and Authorization.
	CORSHeaders []string `json:"cors_headers,omitempty"`

	// Platforms (the second part of a connection key, e.g. "gmail") that
	// passthrough calls may use. Default: all.
	Platforms []string `json:"platforms,omitempty"`

	// Action ids (the x-pica-action-id or x-one-action-id header) that
	// passthrough calls may use. When set, a call without one of them is
	// refused. Default: all.
	Actions []string `json:"actions,omitempty"`

	// Check that a passthrough call's connection key belongs to the caller.
	// Default: true. Turning it off lets any signed-in user use any connection.
	Ownership *bool `json:"ownership,omitempty"`

	// How long a positive ownership answer is cached. Default: 1m
	OwnershipTTL caddy.Duration `json:"ownership_ttl,omitempty"`

	// Most ownership answers kept in the cache (about 150 bytes each, 330
	// for a keyless answer, which holds the connection's id and key).
	// Default: 100000
	OwnershipCacheSize int `json:"ownership_cache_size,omitempty"`

	// Time budget of one call to the vendor, retries included, and of a whole
	// token however many pages it has; for passthrough, the wait for the
	// answer's headers (a streamed body may take longer). Default: 10s
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Most calls to the vendor in flight at once, passthrough included;
	// beyond it callers get 503 with Retry-After. Default: 1024
	MaxConcurrent int `json:"max_concurrent,omitempty"`

	// How long a ticket from {prefix}/ticket is accepted on the token route.
	// Default: 1m
	TicketTTL caddy.Duration `json:"ticket_ttl,omitempty"`

	// The key tickets are signed and encrypted with; a placeholder such as
	// {env.AUTHKIT_TICKET_KEY}. Default: derived from the secret, so every
	// instance with the same secret accepts the others' tickets.
	TicketKey string `json:"ticket_key,omitempty"`

	// Include connection keys in {prefix}/connections rows. With keyless
	// passthrough (X-AuthKit-Connection) the browser never needs them.
	// Default: true
	ExposeKeys *bool `json:"expose_keys,omitempty"`

	// Largest request body accepted on every route but passthrough (they
	// discard it), in bytes; larger gets 413. Passthrough bodies stream,
	// but one that is checked for connection keys (JSON, forms, multipart)
	// is read whole and may not exceed 1 MiB. Default: 65536
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// Write one info line per token, ticket, passthrough call, connection
	// deletion and denial to the logger http.handlers.authkit.audit, which
	// Caddy's `log` options can send to a file of its own. Identities are
	// keyed hashes; connection keys never appear. Default: true
	Audit *bool `json:"audit,omitempty"`

	// Take the token route's identity from a ticket only. The token route
	// is the one the site's auth layer lets through, for the vendor's
	// iframe; an identity header there is whatever the client sent. Turn it
	// off only where the auth layer covers the token route too (the legacy
	// Pica widget set-up): then the identity placeholder names the caller
	// there as well. Default: true
	TicketOnly *bool `json:"ticket_only,omitempty"`

	// The reverse_proxy handler that carries passthrough calls; only
	// reverse_proxy is accepted. Its transport (TLS, forward proxy, dial
	// settings) carries every other call to the vendor too. Left out, it is
	// made from `api`; given, its upstreams and transport default to `api`.
	ProxyRaw json.RawMessage `json:"proxy,omitempty" caddy:"namespace=http.handlers inline_key=handler"`

	provider        *vendor.Provider
	secret          string
	apiURL          *url.URL
	prefixLower     string
	identityHeaders []string // canonical names, from identityHeaders(Identity, IdentityType)
	// stripped are the headers passthrough never forwards besides the
	// fixed ones: the identity headers and those forward_auth copies.
	stripped    []string
	ownershipOn bool
	exposeKeys  bool
	ticketOnly  bool
	platforms   map[string]struct{}
	actions     map[string]struct{}
	logHash     *keys.Hash

	proxy      *reverseproxy.Handler
	vendor     *vendor.Client
	limiter    *vendor.Limiter
	cors       *corsPolicy
	owners     *owners
	tokens     *tokenSource
	tickets    *ticket.Sealer
	connectors *cache.Cache[[]byte]
	metrics    *metrics
	logger     *zap.Logger
	auditLog   *zap.Logger // nil when audit is off
	events     *eventSink
	scope      any // where the prefix is claimed (see layout.go)
}

// CaddyModule returns the Caddy module information.
func (AuthKit) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.authkit",
		New: func() caddy.Module { return new(AuthKit) },
	}
}

// Provision fills defaults, refuses a place in the config the handler
// cannot work from (layout.go), resolves the secret and loads the
// passthrough proxy, whose transport then carries every call to the
// vendor. It makes no network calls.
func (a *AuthKit) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.setDefaults(); err != nil {
		return err
	}
	a.prefixLower = strings.ToLower(a.Prefix)
	a.identityHeaders = identityHeaders(a.Identity, a.IdentityType)
	where, copied, err := a.checkPlace(ctx)
	if err != nil {
		return err
	}
	a.stripped = slices.Concat(a.identityHeaders, copied)
	for _, option := range [][2]string{{"secret", a.Secret}, {"ticket_key", a.TicketKey}} {
		if err := checkBaked(option[0], option[1]); err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
	}
	secret, err := resolveSecret("secret", a.Secret)
	if err != nil {
		return err
	}
	a.secret = secret
	if observeLayout.Load() == nil { // the doctor prints them itself
		for _, warning := range a.warnings(copied) {
			a.logger.Warn(where + ": " + warning)
		}
	}
	ticketKey := secret
	if a.TicketKey != "" {
		if ticketKey, err = resolveSecret("ticket_key", a.TicketKey); err != nil {
			return err
		}
	}
	if a.apiURL, err = parseAPI(a.API); err != nil {
		return fmt.Errorf("authkit: %v", err)
	}
	a.ownershipOn = a.Ownership == nil || *a.Ownership
	a.exposeKeys = a.ExposeKeys == nil || *a.ExposeKeys
	a.ticketOnly = a.TicketOnly == nil || *a.TicketOnly
	a.platforms = setOf(a.Platforms)
	a.actions = setOf(a.Actions)
	a.cors = newCORSPolicy(a.CORSOrigins, a.CORSHeaders)
	a.logHash = logHasher(secret)
	a.tickets = ticket.New(ticketKey, time.Duration(a.TicketTTL))

	if a.metrics, err = newMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	transport, err := a.provisionProxy(ctx)
	if err != nil {
		return err
	}
	a.limiter = vendor.NewLimiter(a.MaxConcurrent, a.metrics.inFlightChanged)
	a.vendor = vendor.New(vendor.Config{
		API: a.apiURL, Provider: a.provider, Secret: a.secret, Transport: transport,
		Timeout: time.Duration(a.Timeout), Limiter: a.limiter, Hooks: a.vendorHooks(),
	})
	a.tokens = newTokenSource(a.vendor)
	a.connectors = cache.New[[]byte](256, connectorsTTL)
	a.owners = newOwners(a.vendor, a.OwnershipCacheSize, time.Duration(a.OwnershipTTL), a.platforms, a.logger, a.hash, a.metrics)
	if a.Audit == nil || *a.Audit {
		a.auditLog = a.logger.Named("audit")
	}
	if a.events, err = newEventSink(ctx, a.metrics.eventsDropped); err != nil {
		return err
	}
	return nil
}

func (a *AuthKit) setDefaults() error {
	if a.Provider == "" {
		a.Provider = DefaultProvider
	}
	if err := checkProvider(a.Provider); err != nil {
		return fmt.Errorf("authkit: %v", err)
	}
	a.provider = vendor.Providers[a.Provider]
	if a.API == "" {
		a.API = a.provider.API
	}
	a.Prefix = normalPrefix(a.Prefix)
	if a.Identity == "" {
		a.Identity = DefaultIdentity
	}
	if a.IdentityType == "" {
		a.IdentityType = DefaultIdentityType
	}
	if len(a.CORSOrigins) == 0 {
		a.CORSOrigins = []string{a.provider.CORSOrigin}
	}
	defaultDuration(&a.OwnershipTTL, DefaultOwnershipTTL)
	defaultDuration(&a.Timeout, DefaultTimeout)
	defaultDuration(&a.TicketTTL, DefaultTicketTTL)
	if a.OwnershipCacheSize <= 0 {
		a.OwnershipCacheSize = DefaultOwnershipCacheSize
	}
	if a.MaxConcurrent <= 0 {
		a.MaxConcurrent = DefaultMaxConcurrent
	}
	if a.MaxBodySize <= 0 {
		a.MaxBodySize = DefaultMaxBodySize
	}
	return nil
}

func defaultDuration(d *caddy.Duration, fallback time.Duration) {
	if *d <= 0 {
		*d = caddy.Duration(fallback)
	}
}

// resolveSecret expands the {env.*} and {file.*} placeholders of option.
// Errors name the placeholder, never a value: a value written in the
// config is the secret itself.
func resolveSecret(option, value string) (string, error) {
	if value == "" {
		return "", fmt.Errorf("authkit: %s is required (use {env.ONE_SECRET_KEY} or {env.PICA_SECRET_KEY})", option)
	}
	named := option + " " + value
	if !isPlaceholder(value) {
		named = option + " (written in the config)"
	}
	secret := strings.TrimSpace(caddy.NewReplacer().ReplaceAll(value, ""))
	if secret == "" {
		// The replacer turns a missing file or variable into "": say which.
		if err := secretSourceMissing(value); err != nil {
			return "", fmt.Errorf("authkit: %s: %v", named, err)
		}
		return "", fmt.Errorf("authkit: %s is empty", named)
	}
	if strings.ContainsAny(secret, "\r\n\x00") {
		return "", fmt.Errorf("authkit: %s contains control characters", named)
	}
	if strings.ContainsAny(secret, "{}") {
		// A nested placeholder ({file.{env.DIR}/key}) resolves to its own
		// leftovers, a wrong key that would only fail at the vendor.
		return "", fmt.Errorf("authkit: %s does not resolve to a key (placeholders cannot be nested; write the path out)", named)
	}
	return secret, nil
}

// Cleanup stops the event sender, gives the prefix back and releases the
// caches; Caddy cleans up the guest reverse_proxy, and with it the
// transport, itself.
func (a *AuthKit) Cleanup() error {
	a.events.close()
	releasePrefix(a)
	if a.owners != nil {
		a.owners.cache.Clear()
	}
	if a.connectors != nil {
		a.connectors.Clear()
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
