package caddyauthkit

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("authkit", parseCaddyfile)
	// After forward_auth, so the identity is set; before handle, route,
	// respond and reverse_proxy, which would answer the request first.
	httpcaddyfile.RegisterDirectiveOrder("authkit", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(AuthKit)
	err := a.UnmarshalCaddyfile(h.Dispenser)
	return a, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	authkit [<matcher>] {
//	    secret         <secret>              # required: {env.PICA_SECRET_KEY} or {file./run/secrets/pica}
//	    api            <url>                 # default https://api.picaos.com
//	    prefix         <path>                # default /authkit
//	    identity       <placeholder>         # default {http.auth.user.id}
//	    identity_type  <type|placeholder>    # user (default), team, organization, project
//	    identity_trusted_proxies_only        # header identity only from trusted_proxies
//	    cors_origins   <origin...>           # default https://authkit.picaos.com; * allowed
//	    cors_headers   <header...>           # extra request headers the browser may send
//	    platforms      <platform...>         # passthrough allow-list (default: all)
//	    actions        <action-id...>        # passthrough allow-list of x-pica-action-id
//	    ownership      on|off                # default on
//	    ownership_ttl  <duration>            # default 1m
//	    ownership_cache_size <entries>       # default 100000
//	    timeout        <duration>            # budget of one Pica call, default 10s
//	    max_concurrent <calls>               # Pica calls in flight, default 1024
//	    max_body_size  <size>                # token and connection routes, default 64KiB
//	    proxy {
//	        <reverse_proxy options>          # e.g. transport http { dial_timeout 2s }
//	    }
//	}
//
// The directive stands for one "authkit" handler in the route; the proxy block
// is the guest reverse_proxy that carries passthrough calls to `api`.
func (a *AuthKit) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		option := d.Val()
		switch option {
		case "secret", "api", "prefix", "identity", "identity_type":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			*map[string]*string{
				"secret": &a.Secret, "api": &a.API, "prefix": &a.Prefix,
				"identity": &a.Identity, "identity_type": &a.IdentityType,
			}[option] = value
			if option == "identity_type" && !isPlaceholder(value) && !validIdentityType(value) {
				return d.Errf("identity_type must be user, team, organization, project or a placeholder, not %q", value)
			}

		case "identity_trusted_proxies_only":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.IdentityTrustedProxiesOnly = true

		case "cors_origins", "cors_headers", "platforms", "actions":
			values := d.RemainingArgs()
			if len(values) == 0 {
				return d.ArgErr()
			}
			list := map[string]*[]string{
				"cors_origins": &a.CORSOrigins, "cors_headers": &a.CORSHeaders,
				"platforms": &a.Platforms, "actions": &a.Actions,
			}[option]
			*list = append(*list, values...)
			if option == "cors_origins" {
				for _, origin := range values {
					if err := validateOrigin(origin); err != nil {
						return d.Err(err.Error())
					}
				}
			}

		case "ownership":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			switch value {
			case "on":
				a.Ownership = nil
			case "off":
				off := false
				a.Ownership = &off
			default:
				return d.Errf("ownership must be on or off, not %q", value)
			}

		case "ownership_ttl", "timeout":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(value)
			if err != nil || dur <= 0 {
				return d.Errf("%s: invalid duration %q", option, value)
			}
			if option == "timeout" {
				a.Timeout = caddy.Duration(dur)
			} else {
				a.OwnershipTTL = caddy.Duration(dur)
			}

		case "ownership_cache_size", "max_concurrent":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 {
				return d.Errf("%s must be a positive whole number, not %q", option, value)
			}
			if option == "max_concurrent" {
				a.MaxConcurrent = n
			} else {
				a.OwnershipCacheSize = n
			}

		case "max_body_size":
			var value string
			if !d.AllArgs(&value) {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(value)
			if err != nil || size < 1 {
				return d.Errf("max_body_size: invalid size %q", value)
			}
			a.MaxBodySize = int64(size)

		case "proxy":
			if a.ProxyRaw != nil {
				return d.Err("proxy may be given once")
			}
			var rp reverseproxy.Handler
			if err := rp.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
				return err
			}
			var warnings []caddyconfig.Warning
			a.ProxyRaw = caddyconfig.JSONModuleObject(rp, "handler", "reverse_proxy", &warnings)

		default:
			return d.Errf("unrecognized authkit option %q", option)
		}
	}
	if a.Secret == "" {
		return d.Err("authkit: secret is required (use {env.PICA_SECRET_KEY})")
	}
	return nil
}

func isPlaceholder(s string) bool {
	return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}'
}

// Interface guards
var _ caddyfile.Unmarshaler = (*AuthKit)(nil)
