package caddyauthkit

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestInvalidIdentity(t *testing.T) {
	for id, invalid := range map[string]bool{
		"alice":                  false,
		"user_123@example.com":   false,
		"Zoë Ü 名前":               false,
		strings.Repeat("a", 128): false,
		"":                       true,
		"   ":                    true,
		"\t\n":                   true,
		strings.Repeat("a", 129): true,
		"alice\r\nX-Injected: 1": true,
		"ali\x00ce":              true,
		"ali\x7fce":              true,
		"ali\u0085ce":            true,
		"\xff\xfe":               true,
		"\xc0\xae":               true,
	} {
		if got := invalidIdentity(id) != ""; got != invalid {
			t.Errorf("invalidIdentity(%q) says invalid=%v, want %v", id, got, invalid)
		}
	}
}

func TestKeySuffixAsPicaWritesIt(t *testing.T) {
	if got := keySuffix("org:acme team 1"); got != "org-acme-team-1" {
		t.Fatalf("keySuffix = %q", got)
	}
}

// FuzzIdentity: an identity let through is printable UTF-8 of at most 128
// bytes, so it is safe in a header, a query and a log line.
func FuzzIdentity(f *testing.F) {
	for _, seed := range []string{"alice", "", " ", "a\r\nb", "\xff", strings.Repeat("x", 200)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if invalidIdentity(id) != "" {
			return
		}
		if len(id) > maxIdentityLength || !utf8.ValidString(id) || strings.TrimSpace(id) == "" ||
			strings.ContainsAny(id, "\r\n\x00") {
			t.Fatalf("invalidIdentity let %q through", id)
		}
	})
}

func TestIdentityHeaderOnlyFromTrustedProxies(t *testing.T) {
	g := startGateway(t, nil, "")
	for _, tc := range []struct {
		trusted string
		status  int
	}{{"10.0.0.0/8", 401}, {"127.0.0.1/32", 200}} {
		g.tester.InitServer(fmt.Sprintf(`{
	admin localhost:2999
	skip_install_trust
	http_port 9080
	https_port 9443
	grace_period 1ns
	servers {
		trusted_proxies static %s
	}
}
http://localhost:9080 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
		identity {http.request.header.X-Forwarded-User}
		identity_trusted_proxies_only
	}
}`, tc.trusted, g.picaURL), "caddyfile")
		g.tester.Client.CloseIdleConnections() // the old config closes them
		if t.Failed() {
			t.FailNow()
		}
		res := g.do(request{method: "POST", url: appURL + "/authkit/token", header: map[string]string{"X-Forwarded-User": "alice"}})
		expect(t, res, tc.status, "")
	}
}
