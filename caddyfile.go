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
	// After encode (itself after basic_auth and forward_auth), so the
	// identity is set and a site's encode compresses the answers; before
	// handle, route, respond and reverse_proxy, which would answer first.
	httpcaddyfile.RegisterDirectiveOrder("authkit", httpcaddyfile.After, "encode")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(AuthKit)
	if err := a.unmarshal(h.Dispenser, &h); err != nil {
		return nil, err
	}
	return a, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	authkit [<matcher>] {
//	    provider       pica|one              # default pica
//	    secret         <secret>              # required: {env.ONE_SECRET_KEY} or {file./run/secrets/one}
//	    api            <url>                 # scheme://host[:port]; default by provider
//	    prefix         <path>                # default /authkit
//	    identity       <placeholder>         # default {http.auth.user.id}
//	    identity_type  <type|placeholder>    # user (default), team, organization, project
//	    identity_trusted_proxies_only        # header identity only from trusted_proxies
//	    cors_origins   <origin...>           # default: the provider's iframe origin; * allowed
//	    cors_headers   <header...>           # extra request headers the browser may send
//	    platforms      <platform...>         # passthrough allow-list (default: all)
//	    actions        <action-id...>        # passthrough allow-list of action ids
//	    ownership      on|off                # default on
//	    ownership_ttl  <duration>            # default 1m
//	    ownership_cache_size <entries>       # default 100000
//	    timeout        <duration>            # budget of one vendor call or token, default 10s
//	    max_concurrent <calls>               # vendor calls in flight, default 1024
//	    max_body_size  <size>                # every route but passthrough, default 64KiB
//	    ticket_ttl     <duration>            # life of a ticket, default 1m
//	    ticket_key     <secret>              # default: derived from the secret
//	    expose_keys    on|off                # keys in /connections rows, default on
//	    audit          on|off                # audit line per call, default on
//	    ticket_only    on|off                # token route by ticket only, default on
//	    proxy {
//	        <reverse_proxy options>          # e.g. transport http { tls_trust_pool file ca.pem }
//	    }
//	}
//
// The directive stands for one "authkit" handler in the route; the proxy
// block is the guest reverse_proxy that carries passthrough calls, and its
// transport every other call to the vendor.
func (a *AuthKit) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return a.unmarshal(d, nil)
}

// unmarshal parses the directive; with the helper of a whole Caddyfile it can
// also finish the proxy block's handle_response routes.
func (a *AuthKit) unmarshal(d *caddyfile.Dispenser, h *httpcaddyfile.Helper) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		option := d.Val()
		if seen[option] && !listOptions[option] {
			return d.Errf("%s already specified", option)
		}
		seen[option] = true
		var err error
		switch option {
		case "provider":
			err = oneArg(d, &a.Provider, checkProvider)
		case "secret":
			err = secretArg(d, &a.Secret)
		case "api":
			err = oneArg(d, &a.API, checkAPI)
		case "prefix":
			err = oneArg(d, &a.Prefix, checkPrefix)
		case "identity":
			err = oneArg(d, &a.Identity, checkIdentity)
		case "identity_type":
			err = oneArg(d, &a.IdentityType, checkIdentityType)
		case "identity_trusted_proxies_only":
			a.IdentityTrustedProxiesOnly, err = true, noArgs(d)
		case "cors_origins":
			err = listArgs(d, &a.CORSOrigins, validateOrigin)
		case "cors_headers":
			err = listArgs(d, &a.CORSHeaders, nil)
		case "platforms":
			err = listArgs(d, &a.Platforms, nil)
		case "actions":
			err = listArgs(d, &a.Actions, nil)
		case "ownership":
			a.Ownership, err = onOff(d)
		case "ownership_ttl":
			err = durationArg(d, &a.OwnershipTTL)
		case "ownership_cache_size":
			err = countArg(d, &a.OwnershipCacheSize)
		case "timeout":
			err = durationArg(d, &a.Timeout)
		case "max_concurrent":
			err = countArg(d, &a.MaxConcurrent)
		case "max_body_size":
			err = sizeArg(d, &a.MaxBodySize)
		case "ticket_ttl":
			err = durationArg(d, &a.TicketTTL)
		case "ticket_key":
			err = secretArg(d, &a.TicketKey)
		case "expose_keys":
			a.ExposeKeys, err = onOff(d)
		case "audit":
			a.Audit, err = onOff(d)
		case "ticket_only":
			a.TicketOnly, err = onOff(d)
		case "proxy":
			err = a.unmarshalProxy(d, h)
		default:
			return d.Errf("unrecognized authkit option %q", option)
		}
		if err != nil {
			return err
		}
	}
	if a.Secret == "" {
		return d.Err("secret is required (use {env.ONE_SECRET_KEY} or {env.PICA_SECRET_KEY})")
	}
	return nil
}

// listOptions may be repeated; their values add up.
var listOptions = map[string]bool{"cors_origins": true, "cors_headers": true, "platforms": true, "actions": true}

func (a *AuthKit) unmarshalProxy(d *caddyfile.Dispenser, h *httpcaddyfile.Helper) error {
	var rp reverseproxy.Handler
	if err := rp.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
		return err
	}
	if h != nil {
		if err := rp.FinalizeUnmarshalCaddyfile(*h); err != nil {
			return err
		}
		a.ProxyRaw = caddyconfig.JSONModuleObject(h.JSON(rp), "handler", "reverse_proxy", nil)
		return nil
	}
	var warnings []caddyconfig.Warning
	a.ProxyRaw = caddyconfig.JSONModuleObject(rp, "handler", "reverse_proxy", &warnings)
	if len(warnings) > 0 {
		return d.Errf("proxy: %s", warnings[0].Message)
	}
	return nil
}

// oneArg reads the option's single argument into dst, checked by check.
func oneArg(d *caddyfile.Dispenser, dst *string, check func(string) error) error {
	var value string
	if !d.AllArgs(&value) {
		return d.ArgErr()
	}
	if check != nil {
		if err := check(value); err != nil {
			return d.Err(err.Error())
		}
	}
	*dst = value
	return nil
}

// secretArg reads a secret option's single argument. Its errors never
// quote the tokens: a secret written into the config, or baked in by
// {$VAR}, would be printed by caddy run, adapt and the doctor.
func secretArg(d *caddyfile.Dispenser, dst *string) error {
	option := d.Val()
	var value string
	if !d.AllArgs(&value) {
		return d.Errf("%s takes exactly one argument", option)
	}
	if err := checkBaked(option, value); err != nil {
		return d.Err(err.Error())
	}
	*dst = value
	return nil
}

func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func listArgs(d *caddyfile.Dispenser, dst *[]string, check func(string) error) error {
	values := d.RemainingArgs()
	if len(values) == 0 {
		return d.ArgErr()
	}
	for _, v := range values {
		if check != nil {
			if err := check(v); err != nil {
				return d.Err(err.Error())
			}
		}
	}
	*dst = append(*dst, values...)
	return nil
}

// onOff reads on or off; on is the default, kept as nil.
func onOff(d *caddyfile.Dispenser) (*bool, error) {
	var on *bool
	err := parsedArg(d, &on, "on or off", func(v string) (*bool, bool) {
		switch v {
		case "on":
			return nil, true
		case "off":
			return new(bool), true
		}
		return nil, false
	})
	return on, err
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return parsedArg(d, dst, "a positive duration such as 10s", func(v string) (caddy.Duration, bool) {
		dur, err := caddy.ParseDuration(v)
		return caddy.Duration(dur), err == nil && dur > 0
	})
}

func countArg(d *caddyfile.Dispenser, dst *int) error {
	return parsedArg(d, dst, "a positive whole number", func(v string) (int, bool) {
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= 1
	})
}

func sizeArg(d *caddyfile.Dispenser, dst *int64) error {
	return parsedArg(d, dst, "a size such as 64KiB", func(v string) (int64, bool) {
		size, err := humanize.ParseBytes(v)
		return int64(size), err == nil && size >= 1 && size <= 1<<40
	})
}

// parsedArg reads the option's single argument into dst through parse,
// or says what the option expects.
func parsedArg[T any](d *caddyfile.Dispenser, dst *T, expect string, parse func(string) (T, bool)) error {
	option := d.Val()
	var value string
	if !d.AllArgs(&value) {
		return d.ArgErr()
	}
	v, ok := parse(value)
	if !ok {
		return d.Errf("%s must be %s, not %q", option, expect, value)
	}
	*dst = v
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*AuthKit)(nil)
