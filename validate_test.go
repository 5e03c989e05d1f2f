package caddyauthkit

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretSourceIsNamed(t *testing.T) {
	dir := t.TempDir()
	for placeholder, want := range map[string]string{
		"{file." + filepath.Join(dir, "missing") + "}": "file " + filepath.Join(dir, "missing") + " does not exist",
		"{file." + dir + "}":                           "file " + dir + " cannot be read",
		"{env.AUTHKIT_DOCTOR_UNSET}":                   "environment variable AUTHKIT_DOCTOR_UNSET is not set",
	} {
		_, err := resolveSecret("secret", placeholder)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", placeholder, err, want)
		}
	}
	t.Setenv("AUTHKIT_DOCTOR_EMPTY", " ")
	if _, err := resolveSecret("secret", "{env.AUTHKIT_DOCTOR_EMPTY}"); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("a set but blank variable: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	header := AuthKit{Secret: "{env.X}", Identity: "{http.request.header.X-User}", IdentityType: "{http.request.header.x-kind}", API: "https://api.picaos.com"}
	w := strings.Join(header.warnings(nil), "\n")
	if !strings.Contains(w, "copy_headers X-User") || !strings.Contains(w, "copy_headers X-Kind") {
		t.Fatalf("no warning for each header the identity comes from: %q", w)
	}
	if w := header.warnings([]string{"X-User"}); len(w) != 1 || !strings.Contains(w[0], "X-Kind") {
		t.Fatalf("warnings with X-User copied by forward_auth: %q", w)
	}
	if w := header.warnings([]string{"X-User", "X-Kind"}); len(w) != 0 {
		t.Fatalf("warnings for headers that forward_auth copies: %q", w)
	}
	header.IdentityTrustedProxiesOnly = true
	if w := header.warnings(nil); len(w) != 0 {
		t.Fatalf("warnings for a trusted header identity: %q", w)
	}
	plain := AuthKit{Secret: "sk_test_x", Identity: DefaultIdentity, API: "http://pica.internal", CORSOrigins: []string{"*"}, Ownership: new(bool)}
	w = strings.Join(plain.warnings(nil), "\n")
	for _, want := range []string{"written into the config", "cors_origins *", "plain http", "ownership is off"} {
		mustContain(t, w, want, "warnings")
	}
	if local := (AuthKit{Secret: "{env.X}", Identity: DefaultIdentity, API: "http://127.0.0.1:8080"}); len(local.warnings(nil)) != 0 {
		t.Fatalf("warnings for a loopback http api: %q", local.warnings(nil))
	}
}

// TestIdentityMustNameAnAuthenticatedCaller: an identity or identity type
// the client writes (URL, cookie, body, host), the same for everyone, or
// the users an auth layer rejected is refused; what an auth layer, a
// trusted proxy or TLS sets is accepted.
func TestIdentityMustNameAnAuthenticatedCaller(t *testing.T) {
	for _, bad := range []string{
		"{http.request.cookie.uid}", "{http.request.uri.query.user}", "{http.request.uri}", "{http.request.orig_uri.path}",
		"{http.request.host}", "{http.request.body}", "{http.request.method}", "{env.USER}", "{file./etc/hostname}",
		"{system.hostname}", "{http.auth.candidate.id}", "user-{http.request.uri.query.id}",
	} {
		if err := checkIdentity(bad); err == nil {
			t.Errorf("identity %s accepted", bad)
		}
		if err := checkIdentityType(bad); err == nil {
			t.Errorf("identity_type %s accepted", bad)
		}
	}
	for _, good := range []string{"{http.auth.user.id}", "{http.auth.user.email}", "{http.request.header.X-User}",
		"{http.request.tls.client.subject}", "{http.vars.user}", "org-{http.auth.user.org}"} {
		if err := checkIdentity(good); err != nil {
			t.Errorf("identity %s refused: %v", good, err)
		}
	}
	if err := checkIdentityType("team"); err != nil {
		t.Errorf("identity_type team refused: %v", err)
	}
}

// TestPrefixMustBeAPlainCleanPath: a prefix Caddy's path matcher would
// clean into another path would never match; "/" would take every request.
func TestPrefixMustBeAPlainCleanPath(t *testing.T) {
	for _, bad := range []string{"/", "//", "/auth//kit", "/a/./b", "/x/../authkit", "/a/..", "/auth kit", "/a%2fb", "/{x}", "/a\\b"} {
		if err := checkPrefix(bad); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	for _, good := range []string{"/authkit", "authkit", "/api/authkit/", "/AuthKit", "/v1.2/auth-kit_x"} {
		if err := checkPrefix(good); err != nil {
			t.Errorf("prefix %q refused: %v", good, err)
		}
	}
}

// TestEnvHoldingJudgesValuesOfEightCharactersOrMore: a value an environment
// variable holds is taken for baked from eight characters on; shorter ones
// could match by chance.
func TestEnvHoldingJudgesValuesOfEightCharactersOrMore(t *testing.T) {
	t.Setenv("AUTHKIT_TEST_EIGHT", "8chars!!")
	t.Setenv("AUTHKIT_TEST_SEVEN", "7chars!")
	if got := envHolding("8chars!!"); got != "AUTHKIT_TEST_EIGHT" {
		t.Errorf("a value of 8: %q", got)
	}
	if got := envHolding("7chars!"); got != "" {
		t.Errorf("a value of 7: %q", got)
	}
}
