package caddyauthkit

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// keyless calls passthrough as user, naming the connection with value.
func (g *gateway) keyless(user, value string) response {
	g.t.Helper()
	return g.as(user, "GET", "/authkit/passthrough/gmail/v1/users/me", map[string]string{"X-AuthKit-Connection": value})
}

// sentKeys are the connection keys that reached the vendor's passthrough.
func (g *gateway) sentKeys() []string {
	var keys []string
	for _, r := range g.pica.Requests() {
		if r.Endpoint == "passthrough" {
			keys = append(keys, r.Header.Get("X-Pica-Connection-Key"))
		}
	}
	return keys
}

func TestKeylessByPlatformAttachesTheCallersKeyAndCachesIt(t *testing.T) {
	g := startGateway(t, nil, "")
	for range 3 {
		expect(t, g.keyless("alice", "gmail"), http.StatusOK, "")
	}
	keys := g.sentKeys()
	if len(keys) != 3 || keys[0] != g.alice.Key || keys[2] != g.alice.Key {
		t.Fatalf("keys sent upstream %q, want alice's key three times", keys)
	}
	// The resolution is cached: one vault lookup, and no ownership check on top.
	if n := g.pica.Count("vault_list"); n != 1 {
		t.Fatalf("%d vault lookups for three calls, want 1", n)
	}
	// The third party never sees the keyless header.
	for _, r := range g.pica.Requests() {
		if r.Endpoint == "passthrough" && r.Header.Get("X-AuthKit-Connection") != "" {
			t.Fatal("X-AuthKit-Connection reached the vendor")
		}
	}
}

// TestKeylessSeesANewConnectionOnceTheWidgetOpens: a cached platform answer
// must not outlive the caller connecting a second account of that platform.
func TestKeylessSeesANewConnectionOnceTheWidgetOpens(t *testing.T) {
	for _, opens := range []struct{ method, path string }{
		{"POST", "/authkit/token"}, {"POST", "/authkit/ticket"}, {"GET", "/authkit/connections"},
	} {
		t.Run(opens.path, func(t *testing.T) {
			g := startGateway(t, nil, "")
			expect(t, g.keyless("alice", "gmail"), http.StatusOK, "") // cached: one gmail
			g.pica.AddConnection("alice", "user", "gmail")            // made in the vendor's iframe
			expect(t, g.as("alice", opens.method, opens.path, nil), http.StatusOK, "")
			expect(t, g.keyless("alice", "gmail"), http.StatusConflict, "connection_ambiguous")
		})
	}
}

func TestKeylessByIDUsesOnlyTheCallersConnection(t *testing.T) {
	g := startGateway(t, nil, "")
	expect(t, g.keyless("alice", g.alice.ID), http.StatusOK, "")
	if keys := g.sentKeys(); len(keys) != 1 || keys[0] != g.alice.Key {
		t.Fatalf("keys sent upstream %q, want alice's", keys)
	}
	g.pica.ResetRequests()

	// Bob's connection id, named by alice: not found, and nothing goes upstream.
	res := g.keyless("alice", g.bob.ID)
	expect(t, res, http.StatusNotFound, "connection_not_found")
	if keys := g.sentKeys(); len(keys) != 0 {
		t.Fatalf("a call went upstream with %q", keys)
	}
	if strings.Contains(string(res.body), g.bob.Key) || strings.Contains(string(res.body), "slack") {
		t.Fatalf("the 404 tells about bob's connection: %s", res.body)
	}
	// An unknown id answers the same.
	unknown := g.keyless("alice", "00000000-0000-0000-0000-000000000000")
	expect(t, unknown, http.StatusNotFound, "connection_not_found")
	if string(unknown.body) != string(res.body) {
		t.Fatalf("someone else's id answers %s, an unknown one %s", res.body, unknown.body)
	}
}

func TestKeylessWithoutAMatchIsNotFound(t *testing.T) {
	g := startGateway(t, nil, "")
	expect(t, g.keyless("alice", "slack"), http.StatusNotFound, "connection_not_found")
	expect(t, g.keyless("bob", "gmail"), http.StatusNotFound, "connection_not_found")
	if keys := g.sentKeys(); len(keys) != 0 {
		t.Fatalf("a call went upstream with %q", keys)
	}
	// A failed resolution is not cached: the connection made next is found.
	g.pica.AddConnection("alice", "user", "slack")
	expect(t, g.keyless("alice", "slack"), http.StatusOK, "")
}

func TestKeylessAmbiguousNamesIdsNeverKeys(t *testing.T) {
	g := startGateway(t, nil, "")
	second := g.pica.AddConnection("alice", "user", "gmail")
	g.pica.AddConnection("alice", "team", "gmail") // another identity type: not alice's
	res := g.keyless("alice", "gmail")
	expect(t, res, http.StatusConflict, "connection_ambiguous")
	var env struct {
		Error struct {
			Connections []connectionSummary `json:"connections"`
		} `json:"error"`
	}
	if err := json.Unmarshal(res.body, &env); err != nil {
		t.Fatal(err)
	}
	got := env.Error.Connections
	if len(got) != 2 || got[0].ID != g.alice.ID || got[1].ID != second.ID || got[0].Platform != "gmail" || got[0].Name == "" {
		t.Fatalf("candidates %+v, want alice's two gmail connections", got)
	}
	for _, key := range []string{g.alice.Key, second.Key, "::default::"} {
		if strings.Contains(string(res.body), key) {
			t.Fatalf("the 409 holds a key: %s", res.body)
		}
	}
	if keys := g.sentKeys(); len(keys) != 0 {
		t.Fatalf("a call went upstream with %q", keys)
	}
	// Picking one by id works.
	expect(t, g.keyless("alice", second.ID), http.StatusOK, "")
	if keys := g.sentKeys(); len(keys) != 1 || keys[0] != second.Key {
		t.Fatalf("keys sent upstream %q, want the one picked", keys)
	}
}

func TestKeylessRefusesAKeyToo(t *testing.T) {
	g := startGateway(t, nil, "")
	res := g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-AuthKit-Connection": "gmail", "X-Pica-Connection-Key": g.alice.Key})
	expect(t, res, http.StatusBadRequest, "header_ambiguous")
	expect(t, g.keyless("alice", "gmail?x=1"), http.StatusBadRequest, "connection_invalid")
	if n := len(g.pica.Requests()); n != 0 {
		t.Fatalf("%d vendor calls for refused requests", n)
	}
}

func TestKeylessAppliesThePlatformAllowList(t *testing.T) {
	g := startGateway(t, nil, "platforms slack")
	expect(t, g.keyless("alice", "gmail"), http.StatusForbidden, "platform_not_allowed")
	if n := len(g.pica.Requests()); n != 0 {
		t.Fatalf("%d vendor calls for a platform refused by name", n)
	}
	expect(t, g.keyless("alice", g.alice.ID), http.StatusForbidden, "platform_not_allowed")
	if keys := g.sentKeys(); len(keys) != 0 {
		t.Fatalf("a call went upstream with %q", keys)
	}
}

func TestKeylessForgetsADeletedConnection(t *testing.T) {
	g := startGateway(t, nil, "")
	expect(t, g.keyless("alice", "gmail"), http.StatusOK, "")
	expect(t, g.as("alice", "DELETE", "/authkit/connections/"+g.alice.ID, nil), http.StatusOK, "")
	g.pica.ResetRequests()
	expect(t, g.keyless("alice", "gmail"), http.StatusNotFound, "connection_not_found")
	if keys := g.sentKeys(); len(keys) != 0 {
		t.Fatalf("the deleted connection's key was still sent: %q", keys)
	}
}

func TestExposeKeysOffKeepsKeysFromTheBrowser(t *testing.T) {
	g := startGateway(t, nil, "expose_keys off")
	g.pica.AddConnection("alice", "user", "slack")
	res := g.as("alice", "GET", "/authkit/connections", nil)
	expect(t, res, http.StatusOK, "")
	var page struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(res.body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Rows) != 2 {
		t.Fatalf("%d rows, want alice's 2: %s", len(page.Rows), res.body)
	}
	for _, row := range page.Rows {
		if _, ok := row["key"]; ok {
			t.Fatalf("a row has a key: %v", row)
		}
		if row["id"] == nil || row["platform"] == nil {
			t.Fatalf("a row lost its id or platform: %v", row)
		}
	}
	if strings.Contains(string(res.body), "::default::") || strings.Contains(string(res.body), g.alice.Key) {
		t.Fatalf("a key is in the answer: %s", res.body)
	}
	// The app can still call without ever holding a key.
	expect(t, g.keyless("alice", "slack"), http.StatusOK, "")

	// With the default, keys are there: the test above would see them.
	g2 := startGateway(t, nil, "")
	res = g2.as("alice", "GET", "/authkit/connections", nil)
	mustContain(t, string(res.body), g2.alice.Key, "connections with expose_keys on")
}
