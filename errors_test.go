package caddyauthkit

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestErrorLineCarriesTheRequestID: a failed request's error line carries
// Caddy's request id, to find its access log line.
func TestErrorLineCarriesTheRequestID(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := startGateway(t, pica, "")
	start := len(readLog(t))

	pica.SetFault("vault_list", sandbox.Fault{Status: 500})
	expect(t, g.as("alice", "GET", "/authkit/connections", nil), http.StatusBadGateway, "vendor_unavailable")
	pica.ClearFaults()
	failures := logged(logLines(t, start), "request failed")
	if len(failures) != 1 {
		t.Fatalf("%d 'request failed' lines, want 1", len(failures))
	}
	if id, _ := failures[0]["uuid"].(string); !uuidPattern.MatchString(id) {
		t.Fatalf("error line without Caddy's request id: %v", failures[0])
	}
}
