package caddyauthkit

import (
	"net/http"
	"testing"
)

func TestConnectionsListOnlyTheCallers(t *testing.T) {
	g := startGateway(t, nil, "")
	g.pica.AddConnection("alice", "team", "hubspot") // same name, another identity type

	res := g.as("alice", "GET", "/authkit/connections?identity=bob&identityType=user&platform=gmail&limit=5", nil)
	expect(t, res, 200, "")
	rows := res.json(t)["rows"].([]any)
	if len(rows) != 1 || rows[0].(map[string]any)["key"] != g.alice.Key {
		t.Fatalf("alice sees %v", rows)
	}
	vault := requestsTo(g.pica, "vault_list")
	if len(vault) != 1 || vault[0].RawQuery != "identity=alice&identityType=user&limit=5&platform=gmail" {
		t.Fatalf("asked the vault %v", vault)
	}
	expect(t, g.as("alice", "GET", "/authkit/connections?limit=0", nil), 400, "query_invalid")
	expect(t, g.as("alice", "GET", "/authkit/connections?platform=a%26identity%3Dbob", nil), 400, "query_invalid")
}

func TestDeleteOnlyTheCallersConnection(t *testing.T) {
	g := startGateway(t, nil, "")

	// Warm the ownership cache with alice's key, then delete it.
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.alice.Key}), 200, "")

	expect(t, g.as("alice", "DELETE", "/authkit/connections/"+g.bob.ID, nil), http.StatusNotFound, "connection_not_found")
	expect(t, g.as("alice", "DELETE", "/authkit/connections/no-such-id", nil), http.StatusNotFound, "connection_not_found")
	expect(t, g.as("alice", "DELETE", "/authkit/connections/..", nil), http.StatusNotFound, "route_not_found")
	if n := g.pica.Count("vault_delete"); n != 0 {
		t.Fatalf("%d deletes reached Pica for connections alice does not own", n)
	}

	res := g.as("alice", "DELETE", "/authkit/connections/"+g.alice.ID, nil)
	expect(t, res, 200, "")
	if res.json(t)["deleted"] != true {
		t.Fatalf("delete answer %s", res.body)
	}
	for _, c := range g.pica.Connections() {
		if c.ID == g.alice.ID {
			t.Fatal("alice's connection is still in the vault")
		}
		if c.ID == g.bob.ID {
			continue
		}
	}
	if len(g.pica.Connections()) != 1 {
		t.Fatalf("vault has %d connections, want bob's only", len(g.pica.Connections()))
	}
	// The cached ownership went with it.
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.alice.Key}), 403, "connection_not_owned")
}

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
