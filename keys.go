package caddyauthkit

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// purposeLogHash names the key of the hashes in logs, derived from the
// secret: every instance that holds the same secret derives the same key,
// so the hashes agree across instances without a shared store. (Tickets
// derive their keys in internal/ticket.)
const purposeLogHash = "caddyauthkit log hash v1"

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
func (a *AuthKit) hash(s string) string { return a.logHash.sum(s) }

// keyedHash is HMAC-SHA256 under one key, its keyed states pooled: keying
// costs more than hashing a short string.
type keyedHash struct {
	key  []byte
	macs sync.Pool
}

func newKeyedHash(key []byte) *keyedHash {
	k := &keyedHash{key: key}
	k.macs.New = func() any { return hmac.New(sha256.New, k.key) }
	return k
}

// sum is the first 8 bytes of the HMAC of s, in hex.
func (k *keyedHash) sum(s string) string {
	mac := k.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(s))
	var sum [sha256.Size]byte
	out := hex.EncodeToString(mac.Sum(sum[:0])[:8])
	k.macs.Put(mac)
	return out
}
