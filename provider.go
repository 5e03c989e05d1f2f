package caddyauthkit

import (
	"net/http"
	"strings"
)

// provider is one dialect of the vendor's API: Pica (api.picaos.com) or One
// (api.withone.ai), the same company renamed. Everything that differs between
// them is in this table; the rest of the module asks it.
type provider struct {
	name string
	// api is the default base URL.
	api string
	// corsOrigin is the origin of the vendor's hosted iframe.
	corsOrigin string
	// secretHeader carries the secret key upstream.
	secretHeader string
	// connectionKeyHeader and actionIDHeader are the passthrough headers,
	// as sent upstream.
	connectionKeyHeader, actionIDHeader string
	// tokenPath is the token endpoint.
	tokenPath string
	// whiteLabel: the token carries isWhiteLabel from /v1/users/flags.
	whiteLabel bool
}

var (
	pica = &provider{
		name:                "pica",
		api:                 "https://api.picaos.com",
		corsOrigin:          "https://authkit.picaos.com",
		secretHeader:        "X-Pica-Secret",
		connectionKeyHeader: "X-Pica-Connection-Key",
		actionIDHeader:      "X-Pica-Action-Id",
		tokenPath:           "/v1/authkit",
		whiteLabel:          true,
	}
	one = &provider{
		name:                "one",
		api:                 "https://api.withone.ai",
		corsOrigin:          "https://auth.withone.ai",
		secretHeader:        "X-One-Secret",
		connectionKeyHeader: "X-One-Connection-Key",
		actionIDHeader:      "X-One-Action-Id",
		tokenPath:           "/v1/authkit/token",
	}

	// providers by the name the `provider` option takes.
	providers = map[string]*provider{pica.name: pica, one.name: one}
)

// Headers of either dialect, canonical: the browser may use either spelling,
// and those of the other dialect are never forwarded.
var (
	connectionKeyHeaders = []string{pica.connectionKeyHeader, one.connectionKeyHeader}
	actionIDHeaders      = []string{pica.actionIDHeader, one.actionIDHeader}
	secretHeaders        = []string{pica.secretHeader, one.secretHeader}
)

// passthroughHeaderPrefixes mark headers the vendor renamed from the third
// party's answer (x-pica-passthrough-content-type); One's naming is not
// documented, so both are recognised.
var passthroughHeaderPrefixes = []string{"X-Pica-Passthrough-", "X-One-Passthrough-"}

// fromThirdParty tells a third party's answer, relayed by the vendor, from
// an error of the vendor's own.
func fromThirdParty(h http.Header) bool {
	for name := range h {
		if thirdPartyHeader(name) != "" {
			return true
		}
	}
	return false
}

// thirdPartyHeader is the third party's name of a renamed header, or "".
func thirdPartyHeader(name string) string {
	for _, prefix := range passthroughHeaderPrefixes {
		if len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
			return name[len(prefix):]
		}
	}
	return ""
}
