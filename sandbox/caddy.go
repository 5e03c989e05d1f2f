package sandbox

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("pica_sandbox", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("pica_sandbox", httpcaddyfile.Before, "respond")
}

// Handler serves the vendor sandbox inside Caddy, for the demo and tests,
// with the stand-in AuthKit iframe at /iframe/. It answers every request it
// gets. Never load it in production.
type Handler struct {
	// The dialect spoken: pica (default), one, or both (each request is
	// answered in the dialect of the secret header it carries).
	Provider string `json:"provider,omitempty"`

	// The secret key the sandbox accepts; placeholders are resolved at
	// provision. Default: DefaultSecret.
	Secret string `json:"secret,omitempty"`

	// How many connectors are enabled in AuthKit. Default: 30
	Connectors int `json:"connectors,omitempty"`

	// The account's authkitWhitelist flag.
	WhiteLabel bool `json:"white_label,omitempty"`

	// Latency added to every API answer.
	Latency caddy.Duration `json:"latency,omitempty"`

	// Connections in the vault at start.
	Connections []SeedConnection `json:"connections,omitempty"`

	server *Server
}

// SeedConnection is a connection the vault starts with.
type SeedConnection struct {
	// The identity that owns the connection.
	Identity string `json:"identity"`
	// Its type. Default: user
	IdentityType string `json:"identity_type,omitempty"`
	// The platform, such as gmail.
	Platform string `json:"platform"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.pica_sandbox",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision starts a fresh sandbox.
func (h *Handler) Provision(caddy.Context) error {
	secret := caddy.NewReplacer().ReplaceAll(h.Secret, "")
	if err := checkProvider(h.Provider); err != nil {
		return fmt.Errorf("pica_sandbox: %w", err)
	}
	if h.Secret != "" && secret == "" {
		return fmt.Errorf("pica_sandbox: secret %s is empty", h.Secret)
	}
	h.server = New(Options{Secret: secret, Provider: h.Provider, Connectors: h.Connectors, WhiteLabel: h.WhiteLabel, Latency: time.Duration(h.Latency)})
	for _, c := range h.Connections {
		h.server.AddConnection(c.Identity, c.IdentityType, c.Platform)
	}
	return nil
}

// ServeHTTP answers as the vendor would.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h.server.ServeHTTP(w, r)
	return nil
}

func parseCaddyfile(helper httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h := new(Handler)
	err := h.UnmarshalCaddyfile(helper.Dispenser)
	return h, err
}

// UnmarshalCaddyfile sets up the sandbox from Caddyfile tokens. Syntax:
//
//	pica_sandbox {
//	    provider    pica|one|both
//	    secret      <secret>
//	    connectors  <n>
//	    white_label
//	    latency     <duration>
//	    connection  <identity> <platform> [<identity_type>]
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	for d.NextBlock(0) {
		switch d.Val() {
		case "provider":
			if !d.AllArgs(&h.Provider) {
				return d.ArgErr()
			}
			if err := checkProvider(h.Provider); err != nil {
				return d.WrapErr(err)
			}
		case "secret":
			if !d.AllArgs(&h.Secret) {
				return d.ArgErr()
			}
		case "connectors":
			var n string
			if !d.AllArgs(&n) {
				return d.ArgErr()
			}
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return d.Errf("connectors must be a whole number, not %q", n)
			}
			h.Connectors = v
		case "white_label":
			h.WhiteLabel = true
		case "latency":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("latency: %v", err)
			}
			h.Latency = caddy.Duration(dur)
		case "connection":
			args := d.RemainingArgs()
			if len(args) < 2 || len(args) > 3 {
				return d.ArgErr()
			}
			c := SeedConnection{Identity: args[0], Platform: args[1]}
			if len(args) == 3 {
				c.IdentityType = args[2]
			}
			h.Connections = append(h.Connections, c)
		default:
			return d.Errf("unrecognized pica_sandbox option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
