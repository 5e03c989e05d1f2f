package ticket

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/internal/inspect"
)

const testSecret = "sk_test_1_CADDYAUTHKITsecretVALUEnotToBeSeen42"

// openErr is "invalid" when ticket does not open, "" when it does.
func openErr(t *testing.T, s *Sealer, ticket string) string {
	t.Helper()
	_, _, err := s.Open(ticket)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errInvalid):
		return "invalid"
	}
	t.Fatalf("Open returned %v, not errInvalid", err)
	return ""
}

type identity struct{ ID, Type string }

func mint(s *Sealer, id identity) (string, time.Time) { return s.Mint(id.ID, id.Type) }

func TestTicketRoundTrip(t *testing.T) {
	tk := New(testSecret, time.Minute)
	now := time.Unix(1_800_000_000, 0)
	tk.now = func() time.Time { return now }
	for _, id := range []identity{
		{ID: "alice", Type: "user"},
		{ID: "Acme Corp: ops ✓", Type: "team"},
		{ID: strings.Repeat("x", inspect.MaxIdentityLength), Type: "organization"},
	} {
		ticket, expires := mint(tk, id)
		if !expires.Equal(now.Add(time.Minute)) {
			t.Fatalf("expires %v, want %v", expires, now.Add(time.Minute))
		}
		gotID, gotType, err := tk.Open(ticket)
		if got := (identity{gotID, gotType}); err != nil || got != id {
			t.Fatalf("opened %v, %v; want %v", got, err, id)
		}
	}
	a, _ := mint(tk, identity{ID: "alice", Type: "user"})
	b, _ := mint(tk, identity{ID: "alice", Type: "user"})
	if a == b {
		t.Fatal("two tickets for the same identity are equal: no fresh IV")
	}
}

func TestTicketRefusesEveryAlteration(t *testing.T) {
	tk := New(testSecret, time.Minute)
	ticket, _ := mint(tk, identity{ID: "alice", Type: "user"})
	raw, err := base64.RawURLEncoding.DecodeString(ticket)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, bit := range []byte{0x01, 0x80} {
			flipped := bytes.Clone(raw)
			flipped[i] ^= bit
			if code := openErr(t, tk, base64.RawURLEncoding.EncodeToString(flipped)); code != "invalid" {
				t.Fatalf("byte %d flipped (%#x): %q", i, bit, code)
			}
		}
	}
	for n := 0; n < len(raw); n++ {
		if code := openErr(t, tk, base64.RawURLEncoding.EncodeToString(raw[:n])); code != "invalid" {
			t.Fatalf("truncated to %d bytes: %q", n, code)
		}
	}
	for name, bad := range map[string]string{
		"empty":          "",
		"not base64":     "!!!" + ticket,
		"padded base64":  base64.URLEncoding.EncodeToString(raw),
		"trailing bytes": base64.RawURLEncoding.EncodeToString(append(bytes.Clone(raw), 0)),
		"too long":       base64.RawURLEncoding.EncodeToString(append(bytes.Clone(raw), make([]byte, 400)...)),
	} {
		if code := openErr(t, tk, bad); code != "invalid" {
			t.Fatalf("%s: %q", name, code)
		}
	}
}

// TestTicketOpensOnlyAsWritten: the same bytes written otherwise (the
// unused bits of the last character set, line breaks, which base64
// decoders skip) are no ticket, so a ticket has one spelling, as a value
// that may be compared, hashed or logged (FuzzOpen found the last
// character's bits).
func TestTicketOpensOnlyAsWritten(t *testing.T) {
	tk := New(testSecret, time.Minute)
	ticket, _ := mint(tk, identity{ID: "alice", Type: "user"})
	if code := openErr(t, tk, ticket); code != "" {
		t.Fatalf("the ticket as written: %q", code)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, ticket[len(ticket)-1])
	respelled := 0
	for i := range alphabet {
		other := ticket[:len(ticket)-1] + alphabet[i:i+1]
		raw, err := base64.RawURLEncoding.DecodeString(other)
		if i == last || err != nil || base64.RawURLEncoding.EncodeToString(raw) == other {
			continue
		}
		respelled++
		if code := openErr(t, tk, other); code != "invalid" {
			t.Fatalf("the last character %q for %q opens", alphabet[i], ticket[len(ticket)-1])
		}
	}
	if respelled == 0 {
		t.Fatalf("no other spelling of %q to try (a ticket of %d characters)", ticket, len(ticket))
	}
	for _, other := range []string{ticket[:10] + "\n" + ticket[10:], ticket + "\r\n", "\n" + ticket} {
		if code := openErr(t, tk, other); code != "invalid" {
			t.Fatalf("%q opens", other)
		}
	}
}

// TestTicketOfAnInvalidIdentityIsRefused: Mint does not check what it
// seals; Open does, so a ticket never stands for an identity or type the
// gateway would refuse.
func TestTicketOfAnInvalidIdentityIsRefused(t *testing.T) {
	tk := New(testSecret, time.Minute)
	for _, id := range []identity{
		{ID: "", Type: "user"},
		{ID: "   ", Type: "user"},
		{ID: "al\r\nice", Type: "user"},
		{ID: strings.Repeat("x", inspect.MaxIdentityLength+1), Type: "user"},
		{ID: "\xff", Type: "user"},
		{ID: "alice", Type: "admin"},
		{ID: "alice", Type: ""},
		{ID: "alice", Type: "User"},
	} {
		ticket, _ := mint(tk, id)
		if code := openErr(t, tk, ticket); code != "invalid" {
			t.Errorf("a ticket for %q: %q", id, code)
		}
	}
}

// TestTicketOfAnotherVersionIsRefusedEvenWhenSigned: the version byte is
// checked on its own, not only through the signature.
func TestTicketOfAnotherVersionIsRefusedEvenWhenSigned(t *testing.T) {
	tk := New(testSecret, time.Minute)
	ticket, _ := mint(tk, identity{ID: "alice", Type: "user"})
	raw, _ := base64.RawURLEncoding.DecodeString(ticket)
	body := raw[:len(raw)-32]
	body[0] = version + 1
	resigned := append(bytes.Clone(body), tk.sign(body)...)
	if code := openErr(t, tk, base64.RawURLEncoding.EncodeToString(resigned)); code != "invalid" {
		t.Fatalf("version %d ticket: %q", version+1, code)
	}
}

// TestTicketTooShortForItsFieldsIsRefusedEvenWhenSigned: a ticket whose
// plaintext cannot hold the fields it declares (no type length byte, or a
// type running past its end) is refused, without a panic: Open checks the
// lengths itself, not only through the signature.
func TestTicketTooShortForItsFieldsIsRefusedEvenWhenSigned(t *testing.T) {
	tk := New(testSecret, time.Minute)
	now := time.Unix(1_800_000_000, 0)
	tk.now = func() time.Time { return now }
	expiry := binary.BigEndian.AppendUint64(nil, uint64(now.Add(time.Minute).Unix()))
	for name, plain := range map[string][]byte{
		"no plaintext":                  nil,
		"an expiry only":                expiry,
		"a type longer than the ticket": append(append(bytes.Clone(expiry), 200), "user"+"alice"...),
		"a type one byte too long":      append(append(bytes.Clone(expiry), 10), "user"+"alice"...),
	} {
		if code := openErr(t, tk, sealed(tk, plain)); code != "invalid" {
			t.Errorf("%s: %q", name, code)
		}
	}
	if code := openErr(t, tk, sealed(tk, append(append(bytes.Clone(expiry), 4), "user"+"alice"...))); code != "" {
		t.Fatalf("the same plaintext, well formed: %q", code)
	}
}

// sealed is a ticket holding plain as Mint seals it (zero IV), signed with
// tk's key.
func sealed(tk *Sealer, plain []byte) string {
	out := make([]byte, 1+aes.BlockSize, 1+aes.BlockSize+len(plain)+sha256.Size)
	out[0] = version
	enc := make([]byte, len(plain))
	tk.stream(out[1:1+aes.BlockSize]).XORKeyStream(enc, plain)
	out = append(out, enc...)
	return base64.RawURLEncoding.EncodeToString(append(out, tk.sign(out)...))
}

func TestTicketExpires(t *testing.T) {
	tk := New(testSecret, time.Minute)
	now := time.Unix(1_800_000_000, 0)
	tk.now = func() time.Time { return now }
	ticket, expires := mint(tk, identity{ID: "alice", Type: "user"})
	now = expires.Add(-time.Second)
	if code := openErr(t, tk, ticket); code != "" {
		t.Fatalf("a second before expiry: %q", code)
	}
	now = expires
	if code := openErr(t, tk, ticket); code != "invalid" {
		t.Fatalf("at expiry: %q", code)
	}
	now = expires.Add(time.Hour)
	if code := openErr(t, tk, ticket); code != "invalid" {
		t.Fatalf("an hour after expiry: %q", code)
	}
}

func TestTicketOfAnotherKeyIsRefused(t *testing.T) {
	ticket, _ := mint(New(testSecret, time.Minute), identity{ID: "alice", Type: "user"})
	if code := openErr(t, New(testSecret, time.Minute), ticket); code != "" {
		t.Fatalf("same key, another instance: %q", code)
	}
	if code := openErr(t, New("another key", time.Minute), ticket); code != "invalid" {
		t.Fatalf("another key: %q", code)
	}
}

// TestTicketHidesTheIdentity: nothing of the identity or its type is in
// the ticket in clear.
func TestTicketHidesTheIdentity(t *testing.T) {
	tk := New(testSecret, time.Minute)
	id := identity{ID: "alice.secret.name@example.com", Type: "organization"}
	ticket, _ := mint(tk, id)
	raw, _ := base64.RawURLEncoding.DecodeString(ticket)
	for _, clear := range []string{id.ID, "alice", "example.com", id.Type} {
		if bytes.Contains(raw, []byte(clear)) || strings.Contains(ticket, clear) {
			t.Fatalf("%q is in the ticket in clear", clear)
		}
	}
}

// fuzzNow is the clock of FuzzOpen: the tickets of its seed corpus
// (testdata/fuzz/FuzzOpen) were minted under testSecret a few seconds
// before it, for a minute.
var fuzzNow = time.Unix(1_800_000_000, 0)

// FuzzOpen: no string makes Open panic or fail with another error than
// errInvalid, and whatever opens is a ticket minted under the key, written
// exactly as Mint writes it, for a valid identity and type that are the
// ones it holds (checked by a reference reading of the format, with keys
// derived here): a mutation of a real ticket never opens.
func FuzzOpen(f *testing.F) {
	s := New(testSecret, time.Minute)
	s.now = func() time.Time { return fuzzNow }
	macKey := referenceKey(testSecret, "caddyauthkit ticket v1 signature")
	encKey := referenceKey(testSecret, "caddyauthkit ticket v1 encryption")
	f.Fuzz(func(t *testing.T, ticket string) {
		id, idType, err := s.Open(ticket)
		if err != nil {
			if !errors.Is(err, errInvalid) {
				t.Fatalf("Open(%q): %v, not errInvalid", ticket, err)
			}
			return
		}
		if inspect.Identity(id) != "" || !inspect.IdentityType(idType) {
			t.Fatalf("Open(%q) = %q, %q: not a valid identity", ticket, id, idType)
		}
		raw, err := base64.RawURLEncoding.DecodeString(ticket)
		if err != nil || base64.RawURLEncoding.EncodeToString(raw) != ticket {
			t.Fatalf("Open(%q) opens a ticket that Mint did not write (the same bytes are %q)", ticket, base64.RawURLEncoding.EncodeToString(raw))
		}
		body, sum := raw[:len(raw)-sha256.Size], raw[len(raw)-sha256.Size:]
		mac := hmac.New(sha256.New, macKey)
		mac.Write(body)
		if body[0] != 1 || !hmac.Equal(sum, mac.Sum(nil)) {
			t.Fatalf("Open(%q) opens a ticket not signed with the key", ticket)
		}
		block, _ := aes.NewCipher(encKey)
		plain := make([]byte, len(body)-1-aes.BlockSize)
		cipher.NewCTR(block, body[1:1+aes.BlockSize]).XORKeyStream(plain, body[1+aes.BlockSize:])
		expires := time.Unix(int64(binary.BigEndian.Uint64(plain)), 0)
		n := int(plain[8])
		if !fuzzNow.Before(expires) || string(plain[9:9+n]) != idType || string(plain[9+n:]) != id {
			t.Fatalf("Open(%q) = %q, %q; the ticket holds %q, expiring %v", ticket, id, idType, plain, expires)
		}
	})
}

// referenceKey derives a ticket key as the format says: HKDF-SHA256 of the
// key, no salt, the purpose as info, 32 bytes.
func referenceKey(key, purpose string) []byte {
	out, err := hkdf.Key(sha256.New, []byte(key), nil, purpose, 32)
	if err != nil {
		panic(err)
	}
	return out
}
