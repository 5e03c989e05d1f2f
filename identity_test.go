package caddyauthkit

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestKeySuffixAsPicaWritesIt(t *testing.T) {
	if got := keySuffix("org:acme team 1"); got != "org-acme-team-1" {
		t.Fatalf("keySuffix = %q", got)
	}
}

func TestIdentityHeaderOnlyFromTrustedProxies(t *testing.T) {
	g := startGateway(t, nil, "")
	for _, tc := range []struct {
		trusted string
		status  int
	}{{"10.0.0.0/8", 401}, {"127.0.0.1/32", 200}} {
		g.tester.InitServer(fmt.Sprintf(`{
`+testGlobals+`	servers {
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
		res := g.do(call{method: "GET", url: appURL + "/authkit/connections", header: map[string]string{"X-Forwarded-User": "alice"}})
		expect(t, res, tc.status, "")
	}
}

func BenchmarkResolveIdentity(b *testing.B) {
	a := &AuthKit{Identity: DefaultIdentity, IdentityType: DefaultIdentityType}
	r := httptest.NewRequest("POST", "/authkit/connections", nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "alice@example.com")
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.resolveIdentity(r, connectionsRoute); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIdentityHeadersAreEveryHeaderTheIdentityComesFrom: the identity and
// its type may both come from headers; each is stripped before
// passthrough and warned about.
func TestIdentityHeadersAreEveryHeaderTheIdentityComesFrom(t *testing.T) {
	got := identityHeaders("{http.request.header.x-user}", "{http.request.header.X-Kind}-x")
	if strings.Join(got, ",") != "X-User,X-Kind" {
		t.Fatalf("identity headers %v", got)
	}
	if got := identityHeaders("{http.auth.user.id}", "user", "{http.request.header.}"); len(got) != 0 {
		t.Fatalf("identity headers %v", got)
	}
	a := AuthKit{Identity: "{http.auth.user.id}", IdentityType: "{http.request.header.X-Kind}", IdentityTrustedProxiesOnly: true}
	if err := a.setDefaults(); err != nil {
		t.Fatal(err)
	}
	a.identityHeaders = identityHeaders(a.Identity, a.IdentityType)
	if err := a.Validate(); err != nil {
		t.Fatalf("identity_trusted_proxies_only with a header identity type: %v", err)
	}
}
