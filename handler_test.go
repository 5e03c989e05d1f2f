package caddyauthkit

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

func TestRoutingMethodsAndPassOn(t *testing.T) {
	g := startGateway(t, nil, "")
	res := g.as("alice", "GET", "/authkit/token", nil)
	expect(t, res, http.StatusMethodNotAllowed, "method_not_allowed")
	if res.Header.Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("Allow %q", res.Header.Get("Allow"))
	}
	expect(t, g.as("alice", "POST", "/authkit/connections", nil), http.StatusMethodNotAllowed, "method_not_allowed")
	expect(t, g.as("alice", "TRACE", "/authkit/passthrough/x", nil), http.StatusMethodNotAllowed, "method_not_allowed")
	expect(t, g.as("alice", "GET", "/authkit/nope", nil), http.StatusNotFound, "route_not_found")

	// Outside the prefix, the app answers.
	for _, path := range []string{"/", "/authkitx/token", "/app/authkit/token"} {
		res := g.as("alice", "GET", path, nil)
		if res.StatusCode != 200 || string(res.body) != "app" {
			t.Fatalf("%s: %d %q, want the app", path, res.StatusCode, res.body)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	g := startGateway(t, nil, "max_body_size 1KiB")
	big := make([]byte, 2048)
	res := g.do(call{method: "POST", url: appURL + "/authkit/token", user: "alice", body: big})
	expect(t, res, http.StatusRequestEntityTooLarge, "body_too_large")
	if n := g.pica.Count(sandbox.EndpointToken); n != 0 {
		t.Fatalf("an oversized request reached Pica %d times", n)
	}
}

// TestPrefixIsMatchedAsCaddyMatchesIt: on the ticket site, whose auth layer
// exempts the token route and preflight under the prefix with `path`
// matchers (case-insensitive, on the cleaned path), every spelling that
// such a matcher lets through without credentials is answered by authkit
// as the route it names: no spelling reaches the app, gets a token or a
// connection list, or reaches the vendor.
func TestPrefixIsMatchedAsCaddyMatchesIt(t *testing.T) {
	g := startGateway(t, nil, "")
	const origin = "https://authkit.picaos.com"
	// code is the envelope's code, or "" for basic_auth's own 401 (the
	// auth layer answered: the path is not one it exempts).
	for _, tc := range []struct {
		method, target string
		status         int
		code           string
	}{
		{"POST", "/AUTHKIT/TOKEN", 401, "ticket_required"},
		{"POST", "//authkit/token", 401, "ticket_required"},
		{"POST", "/x/../authkit/token", 401, "ticket_required"},
		{"POST", "/authkit/./token", 401, "ticket_required"},
		{"POST", "/Authkit/Token", 401, "ticket_required"},
		{"POST", "/authkit%2Ftoken", 401, "ticket_required"},
		{"POST", "/authkit/%74oken", 401, "ticket_required"},
		{"POST", "/authkit//token", 401, "ticket_required"},
		{"OPTIONS", "/AUTHKIT/NOPE", 404, "route_not_found"},
		{"OPTIONS", "//authkit/../authkit/nope", 404, "route_not_found"},
		{"OPTIONS", "/private/admin", 401, ""},
		{"OPTIONS", "/authkit/../private/admin", 401, ""},
		{"GET", "/AUTHKIT/connections", 401, ""},
		{"GET", "/authkit//connections", 401, ""},
		{"GET", "/Authkit/Connectors", 401, ""},
		{"POST", "/AUTHKIT/ticket", 401, ""},
		{"GET", "/private/admin", 401, ""},
	} {
		res := rawRequestAt(t, ticketURL, tc.method, tc.target, map[string]string{
			"Origin": origin, "Content-Length": "0", "X-Auth-User": "alice", "Remote-User": "alice"})
		what := tc.method + " " + tc.target
		if string(res.body) == "app" {
			t.Errorf("%s reached the app without credentials", what)
			continue
		}
		if res.StatusCode != tc.status {
			t.Errorf("%s: %d %.200s, want %d %s", what, res.StatusCode, res.body, tc.status, tc.code)
			continue
		}
		if tc.code == "" {
			if res.Header.Get("Www-Authenticate") == "" {
				t.Errorf("%s: %d %.200s, want basic_auth's 401", what, res.StatusCode, res.body)
			}
			continue
		}
		if code := res.errorCode(t); code != tc.code {
			t.Errorf("%s: error %s, want %s", what, code, tc.code)
		}
		if res.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("%s: authkit's answer has no CORS headers", what)
		}
	}
	// Preflight of the token route, however written, is authkit's too.
	for _, target := range []string{"/AUTHKIT/TOKEN", "//authkit/token", "/authkit/./token"} {
		res := rawRequestAt(t, ticketURL, "OPTIONS", target, map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST"})
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != origin ||
			!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), ticketHeader) {
			t.Errorf("OPTIONS %s: %d %v, want the token route's preflight", target, res.StatusCode, res.Header)
		}
	}
	if reqs := g.pica.Requests(); len(reqs) != 0 {
		t.Fatalf("%d calls reached the vendor without credentials; first: %s %s", len(reqs), reqs[0].Method, reqs[0].Path)
	}
}

// TestPassthroughWrittenOtherThanConfiguredIsRefused: passthrough takes its
// path as the client wrote it (for the confinement check), so a spelling
// that only Caddy's path cleaning or case folding makes the passthrough
// route's is refused 400 path_invalid, and nothing is sent.
func TestPassthroughWrittenOtherThanConfiguredIsRefused(t *testing.T) {
	g := startGateway(t, nil, "")
	header := map[string]string{"Authorization": basicAuth("alice"), "X-Pica-Connection-Key": g.alice.Key}
	for _, target := range []string{
		"/authkit//passthrough/x",
		"//authkit/passthrough/x",
		"/authkit/./passthrough/x",
		"/x/../authkit/passthrough/x",
		"/authkit%2Fpassthrough/x",
	} {
		res := rawRequestAt(t, appURL, "GET", target, header)
		if res.StatusCode != http.StatusBadRequest || res.errorCode(t) != "path_invalid" {
			t.Errorf("GET %s: %d %.200s, want 400 path_invalid", target, res.StatusCode, res.body)
		}
	}
	// Nor in another case than configured: what the proxy sends is what
	// the client wrote, and only that spelling was checked.
	for _, target := range []string{"/AUTHKIT/passthrough/x", "/authkit/PASSTHROUGH/x", "/Authkit/Passthrough/x"} {
		res := rawRequestAt(t, appURL, "GET", target, header)
		if res.StatusCode != http.StatusBadRequest || res.errorCode(t) != "path_invalid" {
			t.Errorf("GET %s: %d %.120s, want 400 path_invalid: a passthrough path in another case than the configured prefix was proxied",
				target, res.StatusCode, res.body)
		}
	}
	if n := len(requestsTo(g.pica, sandbox.EndpointPassthrough)); n != 0 {
		t.Errorf("%d passthrough calls written other than as configured reached the vendor", n)
	}
	// As configured, the same call goes through.
	expect(t, rawRequestAt(t, appURL, "GET", "/authkit/passthrough/x", header), 200, "")
}
