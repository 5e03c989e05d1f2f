package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
)

// The vendor's two dialects. Pica is the original API; One is the same
// company's renamed API, with other header names, a token path of its own
// and the V2 error envelope.
const (
	// ProviderPica speaks Pica's dialect only (the default).
	ProviderPica = "pica"
	// ProviderOne speaks One's dialect only.
	ProviderOne = "one"
	// ProviderBoth accepts either dialect; the secret header a request
	// carries decides which one it is answered in.
	ProviderBoth = "both"
)

// dialect is what differs between Pica and One on the wire.
type dialect struct {
	name string
	// header prefix: x-pica- or x-one-
	prefix string
	// tokenPath is the path of the token endpoint.
	tokenPath string
	// flags is whether GET /v1/users/flags exists.
	flags bool
}

var (
	picaDialect = &dialect{name: ProviderPica, prefix: "X-Pica-", tokenPath: "/v1/authkit", flags: true}
	oneDialect  = &dialect{name: ProviderOne, prefix: "X-One-", tokenPath: "/v1/authkit/token"}
)

func (d *dialect) secretHeader() string        { return d.prefix + "Secret" }
func (d *dialect) connectionKeyHeader() string { return d.prefix + "Connection-Key" }
func (d *dialect) actionIDHeader() string      { return d.prefix + "Action-Id" }
func (d *dialect) passthroughPrefix() string   { return d.prefix + "Passthrough-" }

// checkProvider says why p names no provider; "" means the default.
func checkProvider(p string) error {
	switch p {
	case "", ProviderPica, ProviderOne, ProviderBoth:
		return nil
	}
	return fmt.Errorf("provider must be pica, one or both, not %q", p)
}

// dialectOf picks the dialect a request is answered in. With both, a request
// that carries only One's secret header is One's; anything else is Pica's.
func (s *Server) dialectOf(r *http.Request) *dialect {
	switch s.opts.Provider {
	case ProviderOne:
		return oneDialect
	case ProviderBoth:
		if r.Header.Get(oneDialect.secretHeader()) != "" && r.Header.Get(picaDialect.secretHeader()) == "" {
			return oneDialect
		}
	}
	return picaDialect
}

// picaErrorTypes are the V1 error types, codes and keys by status.
var picaErrorTypes = map[int]struct {
	name string
	code int
	key  string
}{
	400: {"BadRequest", 2000, "err::application::bad_request"},
	409: {"Conflict", 2001, "err::application::conflict"},
	403: {"Forbidden", 2002, "err::application::forbidden"},
	500: {"InternalServerError", 2003, "err::application::internal_server_error"},
	405: {"MethodNotAllowed", 2004, "err::application::method_not_allowed"},
	404: {"NotFound", 2005, "err::application::not_found"},
	429: {"TooManyRequests", 2009, "err::application::too_many_requests"},
	401: {"Unauthorized", 2010, "err::application::unauthorized"},
}

// writeError answers in the dialect's error envelope: Pica's V1
// {type, code, status, key, message, meta}, or One's V2 {code, correlationId,
// key, message, status, type} with a fresh correlationId. One's codes are not
// V1's (its 401 says 2001); the only sample known uses 2001, so every One
// error does, and clients must go by status.
func (d *dialect) writeError(w http.ResponseWriter, status int, message string) {
	if d == oneDialect {
		if status == http.StatusUnauthorized {
			message = "Authentication required"
		}
		writeJSON(w, status, map[string]any{
			"code": 2001, "correlationId": correlationID(), "key": "http_error",
			"message": message, "status": status, "type": "http_error",
		})
		return
	}
	writeError(w, status, message)
}

// writeError answers in Pica's V1 error envelope.
func writeError(w http.ResponseWriter, status int, message string) {
	t, ok := picaErrorTypes[status]
	if !ok {
		t = picaErrorTypes[500]
		if status < 500 {
			t = picaErrorTypes[400]
		}
	}
	writeJSON(w, status, map[string]any{
		"type": t.name, "code": t.code, "status": status, "key": t.key,
		"message": message, "meta": nil,
	})
}

// correlationID is a random UUID (version 4), as One's errors carry.
func correlationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}
