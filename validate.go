package caddyauthkit

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/caddyauthkit/caddyauthkit/internal/inspect"
	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

// Validate checks the configuration with the same checks the Caddyfile
// parser applies to each option (where it can also name file and line); it
// changes nothing. Provision has already parsed the provider and the api.
func (a *AuthKit) Validate() error {
	checks := []struct {
		value string
		check func(string) error
	}{
		{a.Prefix, checkPrefix},
		{a.Identity, checkIdentity},
		{a.IdentityType, checkIdentityType},
	}
	for _, c := range checks {
		if err := c.check(c.value); err != nil {
			return fmt.Errorf("authkit: %v", err)
		}
	}
	for _, origin := range a.CORSOrigins {
		if err := validateOrigin(origin); err != nil {
			return fmt.Errorf("authkit: %v", err)
		}
	}
	if a.IdentityTrustedProxiesOnly && len(a.identityHeaders) == 0 {
		return fmt.Errorf("authkit: identity_trusted_proxies_only needs a header identity or identity type ({http.request.header.*})")
	}
	return nil
}

// isPlaceholder: s is resolved per request (or at provision) by Caddy's
// replacer.
func isPlaceholder(s string) bool {
	return strings.Contains(s, "{") && strings.Contains(s, "}")
}

func checkProvider(name string) error {
	if vendor.Providers[name] == nil {
		return fmt.Errorf("provider must be pica or one, not %q", name)
	}
	return nil
}

// checkAPI accepts scheme://host[:port] only: with a path such as /v1 every
// call would be answered 404.
func checkAPI(api string) error {
	_, err := parseAPI(api)
	return err
}

func parseAPI(api string) (*url.URL, error) {
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api %q must be an absolute URL such as https://api.withone.ai", api)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("api %q must be scheme://host[:port] only, without a path (the gateway adds /v1/...), query or user info", api)
	}
	u.Path, u.RawPath = "", ""
	return u, nil
}

// normalPrefix is prefix as the module uses it: DefaultPrefix when unset,
// with one leading slash and none at the end.
func normalPrefix(prefix string) string {
	return "/" + strings.Trim(cmp.Or(prefix, DefaultPrefix), "/")
}

// checkPrefix accepts a plain, clean path: not "/", which would take every
// request of the site, and nothing Caddy's path matcher would clean into
// another path (a request is matched on its cleaned path).
func checkPrefix(prefix string) error {
	trimmed := strings.Trim(prefix, "/")
	if trimmed == "" || strings.ContainsAny(trimmed, "{}*?#%\\ ") || path.Clean("/"+trimmed) != "/"+trimmed {
		return fmt.Errorf("prefix %q must be a plain, clean path such as /authkit, not the whole site", prefix)
	}
	return nil
}

func checkIdentity(placeholder string) error {
	if !isPlaceholder(placeholder) {
		return fmt.Errorf("identity %q must be a placeholder set by the authentication layer, such as {http.auth.user.id}", placeholder)
	}
	return checkIdentitySource("identity", placeholder)
}

func checkIdentityType(kind string) error {
	if !isPlaceholder(kind) {
		if !inspect.IdentityType(kind) {
			return fmt.Errorf("identity_type must be user, team, organization, project or a placeholder, not %q", kind)
		}
		return nil
	}
	return checkIdentitySource("identity_type", kind)
}

// checkIdentitySource refuses placeholders that name no authenticated
// caller: what the client writes in the URL, a cookie or the body (a
// request header is allowed: an auth layer or a trusted proxy sets it, and
// the warnings say so), values that are the same for everyone, and the
// users an auth layer rejected.
func checkIdentitySource(option, placeholder string) error {
	for _, source := range []struct{ prefix, why string }{
		{"{http.auth.candidate", "holds users the auth layer rejected; use {http.auth.user.id}"},
		{"{http.request.cookie.", "is a cookie the client sends as it likes; let an auth layer check it (forward_auth) and copy the caller into a header"},
		{"{http.request.uri", "is part of the URL the client writes"},
		{"{http.request.orig_uri", "is part of the URL the client writes"},
		{"{http.request.host", "is the host the client names"},
		{"{http.request.body", "is the body the client writes"},
		{"{http.request.method", "is the method the client writes"},
		{"{env.", "is the same for every caller"},
		{"{file.", "is the same for every caller"},
		{"{system.", "is the same for every caller"},
	} {
		if strings.Contains(placeholder, source.prefix) {
			return fmt.Errorf("%s %s %s", option, placeholder, source.why)
		}
	}
	return nil
}

// warnings lists what the configuration allows but is likely a mistake; the
// handler logs them at provision and `caddy authkit doctor` prints them.
// copied are the headers a forward_auth in front copies from the auth
// service. Call after setDefaults.
func (a *AuthKit) warnings(copied []string) []string {
	var out []string
	if !isPlaceholder(a.Secret) {
		out = append(out, "the secret is written into the config; use {env.ONE_SECRET_KEY} or {file.*} so it stays out of the admin API and autosaved config")
	}
	for _, header := range identityHeaders(a.Identity, a.IdentityType) {
		if !a.IdentityTrustedProxiesOnly && !slices.ContainsFunc(copied, func(c string) bool { return strings.EqualFold(c, header) }) {
			out = append(out, "the identity comes from the request header "+header+": the authentication layer must set it and strip the client's own "+
				"(forward_auth ... { copy_headers "+header+" }), or any client names itself; add identity_trusted_proxies_only if it comes from a trusted proxy")
		}
	}
	if a.TicketOnly != nil && !*a.TicketOnly {
		out = append(out, "ticket_only is off: the token route takes the identity from "+a.Identity+" too, so the site's auth layer must cover the token route "+
			"(the vendor's iframe then needs the app's credentials), or anyone gets a token for any identity they can name")
	}
	for _, origin := range a.CORSOrigins {
		if origin == "*" {
			out = append(out, "cors_origins * lets any web site read what the routes answer it (the token, to anyone holding a ticket); list the vendor's iframe and your app")
		}
	}
	if u, err := url.Parse(a.API); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		out = append(out, "api "+a.API+" is plain http: the secret crosses the network unencrypted")
	}
	if a.Ownership != nil && !*a.Ownership {
		out = append(out, "ownership is off: any signed-in user may use any connection through passthrough")
	}
	return out
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// envHolding names an environment variable whose value is the literal
// value, which is then how {$VAR} (directly, or through a snippet's
// arguments) wrote it into the config; "" for none. Short values could
// match by chance and are not judged.
func envHolding(value string) string {
	if len(value) < 8 || isPlaceholder(value) {
		return ""
	}
	for _, kv := range os.Environ() {
		if name, v, ok := strings.Cut(kv, "="); ok && v == value {
			return name
		}
	}
	return ""
}

// checkBaked refuses a secret or ticket key that {$VAR} baked into the
// config, however it got there.
func checkBaked(option, value string) error {
	if name := envHolding(value); name != "" {
		return fmt.Errorf("%s is the value of the environment variable %s, baked into the config (and so into the admin API and the autosaved config), as {$%s} does: write {env.%s} instead, resolved at start", option, name, name, name)
	}
	return nil
}

// secretSourceMissing explains an empty secret whose placeholder is a single
// {file.PATH} or {env.NAME}: Caddy's replacer turns a missing file or an
// unset variable into "", which would otherwise read as "is empty".
func secretSourceMissing(placeholder string) error {
	inner, ok := strings.CutPrefix(placeholder, "{")
	if inner, ok = strings.CutSuffix(inner, "}"); !ok || strings.ContainsAny(inner, "{}") {
		return nil
	}
	if path, ok := strings.CutPrefix(inner, "file."); ok {
		_, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("file %s does not exist", path)
		case err != nil:
			return fmt.Errorf("file %s cannot be read: %v", path, errors.Unwrap(err))
		}
		return nil
	}
	if name, ok := strings.CutPrefix(inner, "env."); ok {
		if _, set := os.LookupEnv(name); !set {
			return fmt.Errorf("environment variable %s is not set", name)
		}
	}
	return nil
}
