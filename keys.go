package caddyauthkit

import "github.com/caddyauthkit/caddyauthkit/internal/keys"

// purposeLogHash names the key of the hashes in logs, derived from the
// secret: every instance that holds the same secret derives the same key,
// so the hashes agree across instances. (Tickets derive theirs in
// internal/ticket.)
const purposeLogHash = "caddyauthkit log hash v1"

// logHasher hashes identities and connection keys for logs under a key
// derived from secret.
func logHasher(secret string) *keys.Hash {
	return keys.NewHash(keys.Derive(secret, purposeLogHash))
}

// hash is how identities and connection keys appear in logs and the audit
// trail: a keyed hash, stable across instances, that a list of user names
// cannot reverse without the secret.
func (a *AuthKit) hash(s string) string { return a.logHash.Sum(s) }
