package keys

import (
	"bytes"
	"testing"
)

const secret = "sk_test_0123456789abcdef"

func TestDerivedKeysDifferByPurposeAndSecret(t *testing.T) {
	a, b := Derive(secret, "purpose a"), Derive(secret, "purpose b")
	if len(a) != 32 || bytes.Equal(a, b) || bytes.Equal(a, Derive("other", "purpose a")) ||
		!bytes.Equal(a, Derive(secret, "purpose a")) || bytes.Contains(a, []byte(secret[:8])) {
		t.Fatal("derived keys are not independent and stable")
	}
}

// TestHashIsStableAndKeyed: a hash is the same for the same input and key
// (so log lines correlate across instances), and another key or input
// gives another, which a list of names cannot reverse without the key.
func TestHashIsStableAndKeyed(t *testing.T) {
	h := NewHash(Derive(secret, "logs"))
	a := h.Sum("user:alice")
	if len(a) != 16 || a != h.Sum("user:alice") || a == h.Sum("user:bob") {
		t.Fatalf("sum %q", a)
	}
	if a == NewHash(Derive("another secret", "logs")).Sum("user:alice") {
		t.Fatal("two secrets hash alike")
	}
}
