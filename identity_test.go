package caddyauthkit

import (
	"context"
	"fmt"
	"net/http/httptest"
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
