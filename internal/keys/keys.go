// Package keys derives the keys caddyauthkit needs from one secret, so
// every instance holding the same secret derives the same keys without a
// shared store, and hashes short strings under them.
package keys

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// Derive is a 32-byte key for purpose, derived from secret (HKDF-SHA256).
func Derive(secret, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	return key
}

// Hash is HMAC-SHA256 under one key, its keyed states pooled: keying
// costs more than hashing a short string.
type Hash struct {
	key  []byte
	macs sync.Pool
}

// NewHash hashes under key.
func NewHash(key []byte) *Hash {
	h := &Hash{key: key}
	h.macs.New = func() any { return hmac.New(sha256.New, h.key) }
	return h
}

// Sum is the first 8 bytes of the HMAC of s, in hex.
func (h *Hash) Sum(s string) string {
	mac := h.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(s))
	var sum [sha256.Size]byte
	out := hex.EncodeToString(mac.Sum(sum[:0])[:8])
	h.macs.Put(mac)
	return out
}
