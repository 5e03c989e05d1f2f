package caddyauthkit

import (
	"bytes"
	"testing"
)

func TestDerivedKeysDifferByPurposeAndSecret(t *testing.T) {
	const other = "caddyauthkit another purpose"
	a, b := deriveKey(testSecret, other), deriveKey(testSecret, purposeLogHash)
	if len(a) != 32 || bytes.Equal(a, b) || bytes.Equal(a, deriveKey("other", other)) ||
		!bytes.Equal(a, deriveKey(testSecret, other)) || bytes.Contains(a, []byte(testSecret[:8])) {
		t.Fatal("derived keys are not independent and stable")
	}
}

// TestKeyedHashIsStableAndKeyed: a log hash is the same for the same input
// and key (so lines correlate across instances), and another key or input
// gives another, which a list of names cannot reverse without the key.
func TestKeyedHashIsStableAndKeyed(t *testing.T) {
	h := newKeyedHash(deriveKey(testSecret, purposeLogHash))
	a := h.sum("user:alice")
	if len(a) != 16 || a != h.sum("user:alice") || a == h.sum("user:bob") {
		t.Fatalf("sum %q", a)
	}
	if a == newKeyedHash(deriveKey("another secret", purposeLogHash)).sum("user:alice") {
		t.Fatal("two secrets hash alike")
	}
}
