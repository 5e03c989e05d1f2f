package caddyauthkit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ownerCacheKey names one cached answer about id: the hash of the identity
// first, so every answer about one caller can be forgotten at once, then
// the kind of question and its subject, hashed so entries stay small and
// hold no key.
func ownerCacheKey(id identity, kind byte, subject string) string {
	var b [33]byte
	idSum := sha256.Sum256([]byte(id.Type + "\x00" + id.ID))
	subjectSum := sha256.Sum256([]byte(subject))
	copy(b[:16], idSum[:16])
	b[16] = kind
	copy(b[17:], subjectSum[:16])
	return string(b[:])
}

// Kinds of cached answers.
const (
	ownsKey      byte = 'k' // the connection key is id's
	resolvesName byte = 'n' // a keyless platform or id resolves to a key
	generationOf byte = 'g' // the current generation of id's platform answers
)

// generation names the current set of id's connections; answers that a new
// connection would change are cached under it. A lost generation is a new
// random one, so a stale answer can never come back.
func (a *AuthKit) generation(id identity) string {
	key := ownerCacheKey(id, generationOf, "")
	if g, ok := a.owners.get(key); ok {
		return g
	}
	return a.renewGeneration(id)
}

// renewGeneration forgets id's platform answers in O(1): the token and
// ticket routes call it, since the widget they open may connect an account.
func (a *AuthKit) renewGeneration(id identity) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	g := string(b[:])
	a.owners.add(ownerCacheKey(id, generationOf, ""), g)
	return g
}

// forgetConnections drops every cached answer about id's connections.
func (a *AuthKit) forgetConnections(id identity) {
	prefix := ownerCacheKey(id, 0, "")[:16]
	a.owners.removeIf(func(key string) bool { return strings.HasPrefix(key, prefix) })
}

// checkOwnership refuses a connection key that is not the caller's: at once
// when the key's identity suffix names someone else, else from the cache,
// else by asking the vendor's vault (concurrent misses for one key share one
// call). Only positive answers are cached.
func (a *AuthKit) checkOwnership(ctx context.Context, id identity, connectionKey string) error {
	if _, suffix, ok := strings.Cut(connectionKey, "|"); ok && suffix != keySuffix(id.ID) {
		return a.notOwned(id, connectionKey)
	}
	owned, err := a.owners.load(ctx, ownerCacheKey(id, ownsKey, connectionKey), func(ctx context.Context) (string, bool, error) {
		owned, err := a.askOwnership(ctx, id, connectionKey)
		if err != nil || !owned {
			return "", false, err
		}
		return connectionKey, true, nil
	})
	if err != nil {
		return err
	}
	if owned == "" {
		return a.notOwned(id, connectionKey)
	}
	return nil
}

// notOwned is the denial of a key that is not the caller's, logged with
// hashes only: enough to correlate, nothing to reuse.
func (a *AuthKit) notOwned(id identity, connectionKey string) error {
	if c := a.logger.Check(zapcore.DebugLevel, "connection key not owned by the caller"); c != nil {
		c.Write(zap.String("identity", a.hash(id.Type+":"+id.ID)), zap.String("connection_key", a.hash(connectionKey)))
	}
	return newError(http.StatusForbidden, "connection_not_owned", "the connection does not belong to the caller")
}

// askOwnership asks the vault whether connectionKey belongs to id. The
// filter is sent, and every row returned is checked again here. The vault's
// key filter is a comma list, so a key with a comma (an identity such as
// uid=carol,ou=people) is looked up by identity and platform instead.
func (a *AuthKit) askOwnership(ctx context.Context, id identity, connectionKey string) (bool, error) {
	query := url.Values{"identity": {id.ID}, "identityType": {id.Type}, "limit": {"100"}}
	if strings.Contains(connectionKey, ",") {
		query.Set("platform", keyPlatform(connectionKey))
	} else {
		query.Set("key", connectionKey)
	}
	page, err := a.pica.vaultList(ctx, query)
	if err != nil {
		return false, err
	}
	for _, row := range page.rows {
		if row.Key == connectionKey && row.ownedBy(id) {
			return true, nil
		}
	}
	return false, nil
}

// keyPlatform is the platform named by a connection key
// ({env}::{platform}::default::{hex}[|identity]).
func keyPlatform(key string) string {
	parts := strings.SplitN(key, "::", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}
