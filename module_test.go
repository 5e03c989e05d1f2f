package caddyauthkit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestDefaultsFollowTheProvider(t *testing.T) {
	for _, tc := range []struct {
		provider, api, origin string
	}{
		{"", "https://api.picaos.com", "https://authkit.picaos.com"},
		{"pica", "https://api.picaos.com", "https://authkit.picaos.com"},
		{"one", "https://api.withone.ai", "https://auth.withone.ai"},
	} {
		a := &AuthKit{Provider: tc.provider}
		if err := a.setDefaults(); err != nil {
			t.Fatal(err)
		}
		if a.API != tc.api || len(a.CORSOrigins) != 1 || a.CORSOrigins[0] != tc.origin {
			t.Fatalf("provider %q: api %s, origins %v", tc.provider, a.API, a.CORSOrigins)
		}
		if a.Prefix != DefaultPrefix || a.Identity != DefaultIdentity || a.IdentityType != DefaultIdentityType ||
			time.Duration(a.Timeout) != DefaultTimeout || time.Duration(a.OwnershipTTL) != DefaultOwnershipTTL ||
			time.Duration(a.TicketTTL) != DefaultTicketTTL || a.OwnershipCacheSize != DefaultOwnershipCacheSize ||
			a.MaxConcurrent != DefaultMaxConcurrent || a.MaxBodySize != DefaultMaxBodySize {
			t.Fatalf("provider %q: defaults %+v", tc.provider, a)
		}
	}
	if err := (&AuthKit{Provider: "picaos"}).setDefaults(); err == nil {
		t.Fatal("an unknown provider was accepted")
	}
}

func TestSetValuesAreKeptAndThePrefixNormalised(t *testing.T) {
	a := &AuthKit{Prefix: "api/kit/", API: "http://127.0.0.1:1", Timeout: caddy.Duration(time.Second),
		MaxConcurrent: 3, MaxBodySize: 10, OwnershipCacheSize: 7, CORSOrigins: []string{"*"}}
	if err := a.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if a.Prefix != "/api/kit" || a.API != "http://127.0.0.1:1" || a.Timeout != caddy.Duration(time.Second) ||
		a.MaxConcurrent != 3 || a.MaxBodySize != 10 || a.OwnershipCacheSize != 7 || a.CORSOrigins[0] != "*" {
		t.Fatalf("set values lost: %+v", a)
	}
}

func TestResolveSecretNamesThePlaceholderNeverTheValue(t *testing.T) {
	t.Setenv("AUTHKIT_MODULE_TEST", "  sk_test_value \n")
	if s, err := resolveSecret("{env.AUTHKIT_MODULE_TEST}"); err != nil || s != "sk_test_value" {
		t.Fatalf("env secret: %q, %v", s, err)
	}
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("sk_from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := resolveSecret("{file." + file + "}"); err != nil || s != "sk_from_file" {
		t.Fatalf("file secret: %q, %v", s, err)
	}
	t.Setenv("AUTHKIT_MODULE_TEST", "sk_a\nsk_b")
	for _, placeholder := range []string{"", "{env.AUTHKIT_MODULE_TEST_UNSET}", "{env.AUTHKIT_MODULE_TEST}"} {
		_, err := resolveSecret(placeholder)
		if err == nil {
			t.Fatalf("%q accepted", placeholder)
		}
		if strings.Contains(err.Error(), "sk_a") {
			t.Fatalf("the error shows the secret: %v", err)
		}
		if placeholder != "" && !strings.Contains(err.Error(), placeholder) {
			t.Fatalf("the error does not name %s: %v", placeholder, err)
		}
	}
}

func TestDerivedKeysDifferByPurposeAndSecret(t *testing.T) {
	a, b := deriveKey(testSecret, purposeTicket), deriveKey(testSecret, purposeLogHash)
	if len(a) != 32 || bytes.Equal(a, b) || bytes.Equal(a, deriveKey("other", purposeTicket)) ||
		!bytes.Equal(a, deriveKey(testSecret, purposeTicket)) || bytes.Contains(a, []byte(testSecret[:8])) {
		t.Fatal("derived keys are not independent and stable")
	}
}

func TestSetOf(t *testing.T) {
	if setOf(nil) != nil {
		t.Fatal("an empty list must mean no allow-list")
	}
	s := setOf([]string{"gmail", "slack", "gmail"})
	if _, ok := s["slack"]; !ok || len(s) != 2 {
		t.Fatalf("set %v", s)
	}
}

// TestReloadKeepsServingWithTheNewConfig: a config change reaches the
// handler (here, the prefix) with no restart, and the old routes are gone.
func TestReloadKeepsServingWithTheNewConfig(t *testing.T) {
	g := startGateway(t, nil, "")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	g.load("prefix /kit")
	expect(t, g.as("alice", "POST", "/kit/token", nil), 200, "")
	if res := g.as("alice", "POST", "/authkit/token", nil); res.StatusCode != 200 || string(res.body) != "app" {
		t.Fatalf("the old prefix is still served by authkit: %d %s", res.StatusCode, res.body)
	}
}
