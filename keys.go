package caddyauthkit

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// Purposes of the keys derived from the secret. Every instance that holds
// the same secret derives the same keys, so hashes and tickets agree across
// instances without a shared store.
const (
	purposeLogHash = "caddyauthkit log hash v1"
	purposeTicket  = "caddyauthkit ticket v1"
)

// deriveKey is a 32-byte key for purpose, derived from the secret (HKDF-SHA256).
func deriveKey(secret, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	return key
}

// hash is how identities and connection keys appear in logs and the audit
// trail: a keyed hash, stable across instances, that a list of user names
// cannot reverse without the secret.
func (a *AuthKit) hash(s string) string {
	mac := hmac.New(sha256.New, a.logHashKey)
	mac.Write([]byte(s))
	return hex.EncodeToString(mac.Sum(nil)[:8])
}

// requestID is Caddy's id of the request ({http.request.uuid}), for logs.
func requestID(r *http.Request) string { return requestIDOf(r.Context()) }

func requestIDOf(ctx context.Context) string {
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return ""
	}
	id, _ := repl.GetString("http.request.uuid")
	return id
}
