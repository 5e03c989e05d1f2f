package ticket

import (
	"bytes"
	"encoding/base64"
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
	case errors.Is(err, ErrInvalid):
		return "invalid"
	}
	t.Fatalf("Open returned %v, not ErrInvalid", err)
	return ""
}

type identity struct{ ID, Type string }

func mint(s *Sealer, id identity) (string, time.Time) { return s.Mint(id.ID, id.Type) }

func TestTicketRoundTrip(t *testing.T) {
	tk := New(testSecret, time.Minute)
	now := time.Unix(1_800_000_000, 0)
	tk.Now = func() time.Time { return now }
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

func TestTicketExpires(t *testing.T) {
	tk := New(testSecret, time.Minute)
	now := time.Unix(1_800_000_000, 0)
	tk.Now = func() time.Time { return now }
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
