package caddyauthkit

import "testing"

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
