// Package ticket mints and opens the short-lived credentials that stand for
// a caller on the token route, so the app's own sign-in credential never
// goes into the vendor's iframe URL. A ticket is opaque: the identity, its
// type and the expiry are encrypted (AES-256-CTR) and the whole is signed
// (HMAC-SHA256, encrypt-then-MAC). Both keys are derived from one key (by
// default the vendor secret), so every instance with the same key accepts
// the tickets of the others, with no shared store.
package ticket

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/caddyauthkit/caddyauthkit/internal/inspect"
	"github.com/caddyauthkit/caddyauthkit/internal/keys"
)

// version is the first byte of every ticket.
const version = 1

// purpose names the keys derived for tickets.
const purpose = "caddyauthkit ticket v1"

// errInvalid is a ticket that was altered, has expired, or is no ticket.
var errInvalid = errors.New("invalid or expired ticket")

// Sealer mints and opens tickets under one key.
type Sealer struct {
	encKey, macKey []byte
	ttl            time.Duration
	// now is the clock; tests move it.
	now func() time.Time
}

// New makes a Sealer whose tickets live for ttl.
func New(key string, ttl time.Duration) *Sealer {
	return &Sealer{
		encKey: keys.Derive(key, purpose+" encryption"),
		macKey: keys.Derive(key, purpose+" signature"),
		ttl:    ttl,
		now:    time.Now,
	}
}

// Mint returns a ticket for the identity and its type, and its expiry.
func (s *Sealer) Mint(identity, identityType string) (string, time.Time) {
	expires := s.now().Add(s.ttl).Truncate(time.Second)
	plain := binary.BigEndian.AppendUint64(nil, uint64(expires.Unix()))
	plain = append(plain, byte(len(identityType)))
	plain = append(plain, identityType...)
	plain = append(plain, identity...)

	out := make([]byte, 1+aes.BlockSize, 1+aes.BlockSize+len(plain)+sha256.Size)
	out[0] = version
	iv := out[1 : 1+aes.BlockSize]
	_, _ = rand.Read(iv)
	sealed := make([]byte, len(plain))
	s.stream(iv).XORKeyStream(sealed, plain)
	out = append(out, sealed...)
	out = append(out, s.sign(out)...)
	return base64.RawURLEncoding.EncodeToString(out), expires
}

// Open returns the identity and type a ticket stands for, if it is intact
// and alive; else errInvalid.
func (s *Sealer) Open(ticket string) (identity, identityType string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(ticket)
	minLen := 1 + aes.BlockSize + 9 + sha256.Size
	// The decoder ignores line breaks and the unused low bits of the last
	// character: only the ticket as Mint wrote it is that ticket.
	if err == nil && base64.RawURLEncoding.EncodeToString(raw) != ticket {
		return "", "", errInvalid
	}
	if err != nil || len(raw) < minLen || len(raw) > minLen+255+inspect.MaxIdentityLength || raw[0] != version {
		return "", "", errInvalid
	}
	body, mac := raw[:len(raw)-sha256.Size], raw[len(raw)-sha256.Size:]
	if !hmac.Equal(mac, s.sign(body)) {
		return "", "", errInvalid
	}
	iv, sealed := body[1:1+aes.BlockSize], body[1+aes.BlockSize:]
	plain := make([]byte, len(sealed))
	s.stream(iv).XORKeyStream(plain, sealed)

	expires := time.Unix(int64(binary.BigEndian.Uint64(plain)), 0)
	typeLen := int(plain[8])
	if !s.now().Before(expires) || 9+typeLen > len(plain) {
		return "", "", errInvalid
	}
	identityType, identity = string(plain[9:9+typeLen]), string(plain[9+typeLen:])
	if !inspect.IdentityType(identityType) || inspect.Identity(identity) != "" {
		return "", "", errInvalid
	}
	return identity, identityType, nil
}

func (s *Sealer) sign(b []byte) []byte {
	mac := hmac.New(sha256.New, s.macKey)
	mac.Write(b)
	return mac.Sum(nil)
}

func (s *Sealer) stream(iv []byte) cipher.Stream {
	block, _ := aes.NewCipher(s.encKey) // a 32-byte key never fails
	return cipher.NewCTR(block, iv)
}
