package caddyauthkit

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

func TestConnectorsAreCachedForEveryone(t *testing.T) {
	g := startGateway(t, nil, "")
	res := g.as("alice", "GET", "/authkit/connectors?limit=50", nil)
	expect(t, res, 200, "")
	if total := res.json(t)["total"]; total != 30.0 {
		t.Fatalf("%v connectors, want the 30 enabled in AuthKit", total)
	}
	expect(t, g.as("bob", "GET", "/authkit/connectors?limit=50", nil), 200, "")
	if n := g.pica.Count("connectors"); n != 1 {
		t.Fatalf("%d connector calls, want 1 (cached)", n)
	}
}

// TestConnectorsThatAreNotJSONAre502NeverRelayedNorCached: a vendor 200 of
// {"rows":[1,]} on the connectors list is 502 vendor_bad_response, not
// relayed and not cached: the same query, once the vendor answers well,
// asks the vendor again and gets the list.
func TestConnectorsThatAreNotJSONAre502NeverRelayedNorCached(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/available-connectors" && broken.Load() {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"rows":[1,],"total":1,"pages":1,"page":1}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	g := startGatewayWith(t, vendorSetup{wrap: wrap}, "")
	for range 2 {
		res := g.as("alice", "GET", "/authkit/connectors?limit=50", nil)
		if res.StatusCode != http.StatusBadGateway || res.errorCode(t) != "vendor_bad_response" {
			t.Fatalf("%d %.200s, want 502 vendor_bad_response", res.StatusCode, res.body)
		}
		if strings.Contains(string(res.body), "[1,") {
			t.Fatalf("the vendor's broken rows were relayed: %s", res.body)
		}
	}
	broken.Store(false)
	res := g.as("alice", "GET", "/authkit/connectors?limit=50", nil)
	expect(t, res, 200, "")
	if total := res.json(t)["total"]; total != 30.0 {
		t.Fatalf("total %v after the vendor recovered, want 30", total)
	}
	if n := g.pica.Count(sandbox.EndpointConnectors); n != 1 {
		t.Fatalf("%d connector calls reached the sandbox, want the one after the vendor recovered", n)
	}
}
