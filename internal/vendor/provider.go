// Package vendor is the client of the vendor's API: One (api.withone.ai) or
// Pica (api.picaos.com), the same company renamed. It holds the two
// dialects, the calls with their retries and time budget, the answers
// (token pages, vault rows and connector lists, checked and relayed without
// decoding what the gateway only passes on) and the mapping of the vendor's
// failures to a typed Error. It needs no Caddy: the gateway gives it a
// transport, and hooks for its metrics, logs and traces.
package vendor

import (
	"net/http"
	"strings"
)

// Provider is one dialect of the vendor's API. Everything that differs
// between Pica and One is in this table; the rest asks it.
type Provider struct {
	Name string
	// API is the default base URL.
	API string
	// CORSOrigin is the origin of the vendor's hosted iframe.
	CORSOrigin string
	// SecretHeader carries the secret key upstream.
	SecretHeader string
	// ConnectionKeyHeader and ActionIDHeader are the passthrough headers,
	// as sent upstream.
	ConnectionKeyHeader, ActionIDHeader string
	// TokenPath is the token endpoint.
	TokenPath string
	// WhiteLabel: the token carries isWhiteLabel from /v1/users/flags.
	WhiteLabel bool
}

var (
	Pica = &Provider{
		Name:                "pica",
		API:                 "https://api.picaos.com",
		CORSOrigin:          "https://authkit.picaos.com",
		SecretHeader:        "X-Pica-Secret",
		ConnectionKeyHeader: "X-Pica-Connection-Key",
		ActionIDHeader:      "X-Pica-Action-Id",
		TokenPath:           "/v1/authkit",
		WhiteLabel:          true,
	}
	One = &Provider{
		Name:                "one",
		API:                 "https://api.withone.ai",
		CORSOrigin:          "https://auth.withone.ai",
		SecretHeader:        "X-One-Secret",
		ConnectionKeyHeader: "X-One-Connection-Key",
		ActionIDHeader:      "X-One-Action-Id",
		TokenPath:           "/v1/authkit/token",
	}

	// Providers by the name the `provider` option takes.
	Providers = map[string]*Provider{Pica.Name: Pica, One.Name: One}
)

// Headers of either dialect, canonical: the browser may use either
// spelling, and those of the other dialect are never forwarded.
var (
	ConnectionKeyHeaders = []string{Pica.ConnectionKeyHeader, One.ConnectionKeyHeader}
	ActionIDHeaders      = []string{Pica.ActionIDHeader, One.ActionIDHeader}
	SecretHeaders        = []string{Pica.SecretHeader, One.SecretHeader}
)

// passthroughHeaderPrefixes mark headers the vendor renamed from the third
// party's answer (x-pica-passthrough-content-type); One's naming is not
// documented, so both are recognised.
var passthroughHeaderPrefixes = []string{"X-Pica-Passthrough-", "X-One-Passthrough-"}

// FromThirdParty tells a third party's answer, relayed by the vendor, from
// an answer of the vendor's own.
func FromThirdParty(h http.Header) bool {
	for name := range h {
		if ThirdPartyHeader(name) != "" {
			return true
		}
	}
	return false
}

// ThirdPartyHeader is the third party's name of a renamed header, or "".
func ThirdPartyHeader(name string) string {
	for _, prefix := range passthroughHeaderPrefixes {
		if len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
			return name[len(prefix):]
		}
	}
	return ""
}
