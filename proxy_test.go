package caddyauthkit

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// TestEveryRouteReachesAnHTTPSVendorTrustedOnlyInTheProxyBlock: the vendor
// is served over HTTPS by a CA that only the proxy block's
// `tls_trust_pool file` names (not the system pool, not
// tls_insecure_skip_verify). With ownership on, every route works: token,
// ticket and token by ticket, connections, connectors, passthrough and
// delete, all on the one client riding on the proxy's transport, each call
// addressed to the vendor's host and carrying the secret.
func TestEveryRouteReachesAnHTTPSVendorTrustedOnlyInTheProxyBlock(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 150, WhiteLabel: true})
	g := startGatewayWith(t, vendorSetup{pica: pica, tls: true}, trustVendorCA)
	if !strings.HasPrefix(g.picaURL, "https://") {
		t.Fatalf("vendor at %s, not over TLS", g.picaURL)
	}

	token := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, token, 200, "")
	if body := token.json(t); len(body["rows"].([]any)) != 150 || body["isWhiteLabel"] != true {
		t.Fatalf("token over TLS: %d rows, isWhiteLabel %v", len(body["rows"].([]any)), body["isWhiteLabel"])
	}

	ticket := g.do(call{method: "POST", url: ticketURL + "/authkit/ticket", user: "alice"})
	expect(t, ticket, 200, "")
	byTicket := g.do(call{method: "POST", url: ticketURL + "/authkit/token",
		header: map[string]string{ticketHeader: ticket.json(t)["ticket"].(string)}})
	expect(t, byTicket, 200, "")

	conns := g.as("alice", "GET", "/authkit/connections", nil)
	expect(t, conns, 200, "")
	rows := conns.json(t)["rows"].([]any)
	if len(rows) != 1 || rows[0].(map[string]any)["id"] != g.alice.ID {
		t.Fatalf("alice's connections over TLS: %s", conns.body)
	}

	connectors := g.as("alice", "GET", "/authkit/connectors", nil)
	expect(t, connectors, 200, "")
	if len(connectors.json(t)["rows"].([]any)) == 0 {
		t.Fatalf("no connectors over TLS: %s", connectors.body)
	}

	expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me",
		map[string]string{"X-Pica-Connection-Key": g.alice.Key}), 200, "")
	// Ownership is checked against the vault over TLS too.
	expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me",
		map[string]string{"X-Pica-Connection-Key": g.bob.Key}), 403, "")
	expect(t, g.as("bob", "DELETE", "/authkit/connections/"+g.bob.ID, nil), 200, "")

	want := strings.TrimPrefix(g.picaURL, "https://")
	seen := map[string]int{}
	for _, r := range pica.Requests() {
		seen[r.Endpoint]++
		if r.Host != want {
			t.Fatalf("%s call addressed to %q, want the vendor's host %q", r.Endpoint, r.Host, want)
		}
		if r.Header.Get("X-Pica-Secret") != testSecret {
			t.Fatalf("%s call without the secret", r.Endpoint)
		}
	}
	for _, endpoint := range []string{sandbox.EndpointToken, "flags", "vault_list", "connectors", "passthrough", "vault_get", "vault_delete"} {
		if seen[endpoint] == 0 {
			t.Fatalf("no %s call reached the vendor over TLS (calls: %v)", endpoint, seen)
		}
	}
	if seen[sandbox.EndpointToken] != 4 { // two tokens of two pages
		t.Fatalf("%d token page calls, want 4", seen[sandbox.EndpointToken])
	}
}

// TestAVendorCATheProxyDoesNotTrustFailsEveryRoute: the same HTTPS vendor
// without the trust pool is refused on every route (the TLS settings are
// not bypassed by some route's own client), as vendor_unreachable.
func TestAVendorCATheProxyDoesNotTrustFailsEveryRoute(t *testing.T) {
	g := startGatewayWith(t, vendorSetup{tls: true}, "")
	for _, call := range []struct{ method, path string }{
		{"POST", "/authkit/token"},
		{"GET", "/authkit/connections"},
		{"GET", "/authkit/connectors"},
		{"GET", "/authkit/passthrough/users/me"},
	} {
		res := g.as("alice", call.method, call.path, map[string]string{"X-Pica-Connection-Key": g.alice.Key})
		if res.StatusCode != http.StatusBadGateway {
			t.Fatalf("%s %s with an untrusted vendor CA: %d %s", call.method, call.path, res.StatusCode, res.body)
		}
	}
	if n := len(g.pica.Requests()); n != 0 {
		t.Fatalf("%d requests reached a vendor whose certificate is not trusted", n)
	}
}
