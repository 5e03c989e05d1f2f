package caddyauthkit

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// logLines are the JSON lines Caddy logged after offset bytes of the log.
func logLines(t *testing.T, offset int) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range strings.Split(readLog(t)[offset:], "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil {
			lines = append(lines, entry)
		}
	}
	return lines
}

func logged(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// TestInFlightGaugeAndOverload: while one slow call holds the only slot the
// gauge says 1 and the next caller gets 503, counted; afterwards the gauge
// is back to 0. Denial series exist at 0 before any denial.
func TestInFlightGaugeAndOverload(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := startGateway(t, pica, "max_concurrent 1")

	metrics := scrape(t)
	for _, want := range []string{
		"caddy_authkit_vendor_calls_in_flight 0",
		"caddy_authkit_overloaded_total 0",
		`caddy_authkit_denials_total{reason="ticket_invalid"} 0`,
		`caddy_authkit_denials_total{reason="connection_not_owned"} 0`,
		`caddy_authkit_denials_total{reason="identity_missing"} 0`,
	} {
		mustContain(t, metrics, want, "/metrics at start")
	}

	pica.SetFault("vault_list", sandbox.Fault{Delay: 2 * time.Second, Times: 1})
	slow := make(chan response, 1)
	go func() { slow <- g.as("alice", "GET", "/authkit/connections", nil) }()
	// The slow call is in flight once the sandbox has it.
	deadline := time.Now().Add(2 * time.Second)
	for pica.Count("vault_list") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow call never reached the sandbox")
		}
		scrape(t) // a round trip paces the loop
	}
	mustContain(t, scrape(t), "caddy_authkit_vendor_calls_in_flight 1", "/metrics during a call")
	expect(t, g.as("bob", "GET", "/authkit/connections", nil), http.StatusServiceUnavailable, "overloaded")
	mustContain(t, scrape(t), "caddy_authkit_overloaded_total 1", "/metrics after an overload")

	expect(t, <-slow, http.StatusOK, "")
	mustContain(t, scrape(t), "caddy_authkit_vendor_calls_in_flight 0", "/metrics after the call")
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestLogsCorrelateWithoutNames: a failed request's error line carries
// Caddy's request id; the denial line appears on a real denial only, and
// names the caller and the key by keyed hashes.
func TestLogsCorrelateWithoutNames(t *testing.T) {
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
	if id, _ := failures[0]["request_id"].(string); !uuidPattern.MatchString(id) {
		t.Fatalf("error line without Caddy's request id: %v", failures[0])
	}

	// The caller's own key, twice (a miss, then a hit): no denial logged.
	own := map[string]string{"X-Pica-Connection-Key": g.alice.Key}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", own), http.StatusOK, "")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", own), http.StatusOK, "")
	if n := len(logged(logLines(t, start), "connection key not owned by the caller")); n != 0 {
		t.Fatalf("%d denial lines for the caller's own key", n)
	}

	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}),
		http.StatusForbidden, "connection_not_owned")
	denials := logged(logLines(t, start), "connection key not owned by the caller")
	if len(denials) != 1 {
		t.Fatalf("%d denial lines, want 1", len(denials))
	}
	if denials[0]["identity"] != logHash("user:alice") || denials[0]["connection_key"] != logHash(g.bob.Key) {
		t.Fatalf("denial line does not name caller and key by keyed hash: %v", denials[0])
	}
	raw, _ := json.Marshal(denials[0])
	if strings.Contains(string(raw), "alice") || strings.Contains(string(raw), g.bob.Key) {
		t.Fatalf("denial line names the caller or the key: %s", raw)
	}
}
