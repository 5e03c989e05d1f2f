package caddyauthkit

import (
	"net/http"
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
