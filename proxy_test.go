package caddyauthkit

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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

	byTicket := g.do(call{method: "POST", url: ticketURL + "/authkit/token", header: g.ticketFor("alice")})
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

// TestDialAddressDefaultsToTheSchemesPort: an api without a port (the
// defaults, https://api.picaos.com and https://api.withone.ai) is dialled
// on 443, a plain http one on 80; a port written is kept.
func TestDialAddressDefaultsToTheSchemesPort(t *testing.T) {
	for api, want := range map[string]string{
		"https://api.picaos.com":  "api.picaos.com:443",
		"http://pica.internal":    "pica.internal:80",
		"http://127.0.0.1:8080":   "127.0.0.1:8080",
		"https://[::1]":           "[::1]:443",
		"https://api.example:444": "api.example:444",
	} {
		u, err := url.Parse(api)
		if err != nil {
			t.Fatal(err)
		}
		if got := dialAddress(u); got != want {
			t.Errorf("%s is dialled at %s, want %s", api, got, want)
		}
	}
}

// TestVendorsOwnPassthroughErrorsAreTheGatewaysEnvelope: an error of the
// vendor's own on passthrough (no third-party headers) is replaced by the
// gateway's envelope, with the status that tells who is at fault, and a
// Retry-After only where the vendor gave one; only the vendor's 5xx-class
// failures are logged as errors.
func TestVendorsOwnPassthroughErrorsAreTheGatewaysEnvelope(t *testing.T) {
	g := startGateway(t, nil, "")
	key := map[string]string{"X-Pica-Connection-Key": g.alice.Key}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me", key), 200, "") // ownership cached
	for _, tc := range []struct {
		fault      sandbox.Fault
		status     int
		code       string
		retryAfter string
		logged     bool
	}{
		{sandbox.Fault{Status: 400}, 400, "vendor_refused", "", false},
		{sandbox.Fault{Status: 404}, 404, "vendor_refused", "", false},
		{sandbox.Fault{Status: 401}, 502, "vendor_rejected_secret", "", true},
		{sandbox.Fault{Status: 429, RetryAfter: 7}, 429, "vendor_rate_limited", "7", false},
		{sandbox.Fault{Status: 503}, 502, "vendor_unavailable", "", true},
	} {
		g.pica.ClearFaults()
		g.pica.SetFault(sandbox.EndpointPassthrough, tc.fault)
		offset := len(readLog(t))
		res := g.as("alice", "GET", "/authkit/passthrough/users/me", key)
		what := fmt.Sprintf("the vendor's own %d", tc.fault.Status)
		expect(t, res, tc.status, tc.code)
		if res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: answered with %v, not the envelope's headers", what, res.Header)
		}
		if got := res.Header.Get("Retry-After"); got != tc.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", what, got, tc.retryAfter)
		}
		// The error line is written before the answer leaves the gateway.
		if errorLine := len(logged(logLines(t, offset), "vendor failed a passthrough call")) > 0; errorLine != tc.logged {
			t.Errorf("%s: logged as the vendor's failure: %v, want %v", what, errorLine, tc.logged)
		}
	}
}

// TestAVendorThatCannotBeDialledIsTriedAgain: when no connection to the
// vendor can be made (nothing was sent), passthrough tries twice more,
// 100 ms apart, before it answers 502: a vendor restarting does not fail
// the call. Caddy counts the retries in {http.reverse_proxy.retries}.
func TestAVendorThatCannotBeDialledIsTriedAgain(t *testing.T) {
	g := startGateway(t, nil, "")
	g.picaURL = "http://127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens there
	config := strings.Replace(g.config("ownership off"), "http://localhost:9080 {\n",
		"http://localhost:9080 {\n\theader >X-Vendor-Retries {http.reverse_proxy.retries}\n", 1)
	g.loadConfig(config)
	start := time.Now()
	res := g.as("alice", "GET", "/authkit/passthrough/users/me", map[string]string{"X-Pica-Connection-Key": g.alice.Key})
	elapsed := time.Since(start)
	expect(t, res, http.StatusBadGateway, "vendor_unreachable")
	if got := res.Header.Get("X-Vendor-Retries"); got != "2" {
		t.Fatalf("the vendor's dial was retried %q times, want 2", got)
	}
	if elapsed < 200*time.Millisecond {
		t.Fatalf("two retries in %v: not 100 ms apart", elapsed)
	}
}
