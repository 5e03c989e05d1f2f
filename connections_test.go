package caddyauthkit

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
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

// ignoreIdentityFilter is a vendor that ignores the identity filter of the
// vault list and returns everyone's rows.
func ignoreIdentityFilter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/vault/connections" {
			q := r.URL.Query()
			q.Del("identity")
			q.Del("identityType")
			r.URL.RawQuery = q.Encode()
		}
		next.ServeHTTP(w, r)
	})
}

// TestConnectionsDropRowsOfOthersTheVendorReturns: when the vendor ignores
// the identity filter, the gateway still shows the caller only its rows
// (not bob's, nor those of alice the team), and with expose_keys off no
// row has a key.
func TestConnectionsDropRowsOfOthersTheVendorReturns(t *testing.T) {
	for _, keys := range []string{"on", "off"} {
		t.Run("expose_keys "+keys, func(t *testing.T) {
			pica := sandbox.New(sandbox.Options{Secret: testSecret})
			pica.AddConnection("alice", "team", "hubspot")
			g := startGatewayWith(t, vendorSetup{pica: pica, wrap: ignoreIdentityFilter}, "expose_keys "+keys)
			res := g.as("alice", "GET", "/authkit/connections", nil)
			expect(t, res, 200, "")
			rows := res.json(t)["rows"].([]any)
			if len(rows) != 1 {
				t.Fatalf("alice sees %d rows of a vendor returning everyone's: %s", len(rows), res.body)
			}
			// Nor how many connections the others have.
			if total := res.json(t)["total"]; total != float64(1) {
				t.Fatalf("total %v tells alice about everyone's connections", total)
			}
			row := rows[0].(map[string]any)
			if row["id"] != g.alice.ID || row["platform"] != "gmail" || row["identity"] != "alice" {
				t.Fatalf("alice sees %v", row)
			}
			key, hasKey := row["key"]
			if keys == "on" && key != g.alice.Key {
				t.Fatalf("key %v, want alice's", key)
			}
			if keys == "off" && hasKey {
				t.Fatalf("expose_keys off, but the row has a key: %v", row)
			}
			// The vendor did return the others: the filter was the gateway's.
			if n := len(pica.Connections()); n != 3 {
				t.Fatalf("vault has %d connections", n)
			}
		})
	}
}

func TestValidNameAcceptsOnlyPlainNames(t *testing.T) {
	for _, ok := range []string{"a", "z", "A", "Z", "0", "9", "google-calendar", "a_b.c", strings.Repeat("x", 64)} {
		if !validName(ok) {
			t.Fatalf("%q refused", ok)
		}
	}
	// The characters on either side of each accepted range, and separators.
	for _, bad := range []string{"", "`", "{", "@", "[", "/", ":", "a&b", "a=b", "a b", "é", strings.Repeat("x", 65)} {
		if validName(bad) {
			t.Fatalf("%q accepted", bad)
		}
	}
}

// TestExposeKeysOffDropsEveryFieldNamedLikeAKey: with expose_keys off, a
// vendor whose rows carry keys under any name (key, Key, connectionKey,
// secretKey, meta.apiKey, deeper in arrays, any case) gives the browser
// none of them; the caller's rows and their other fields stay.
func TestExposeKeysOffDropsEveryFieldNamedLikeAKey(t *testing.T) {
	row := func(id string, fields string) string {
		return `{"id":"` + id + `","identity":"alice","identityType":"user","platform":"gmail","name":"kept-` + id + `",` + fields + `}`
	}
	rows := []string{
		row("c1", `"key":"test::gmail::default::k1|alice"`),
		row("c2", `"Key":"SECRET-VALUE-2"`),
		row("c3", `"connectionKey":"SECRET-VALUE-3"`),
		row("c4", `"secretKey":"SECRET-VALUE-4"`),
		row("c5", `"meta":{"apiKey":"SECRET-VALUE-5","label":"kept-label"}`),
		row("c6", `"meta":{"nested":[{"KEY":"SECRET-VALUE-6","x_api_key":"SECRET-VALUE-7"}]},"PublicKEY":"SECRET-VALUE-8"`),
		row("c7", `"keys":["kept-keys"],"monkey":{"secretKey":"SECRET-VALUE-9"}`),
	}
	vault := `{"rows":[` + strings.Join(rows, ",") + `],"total":7,"pages":1,"page":1}`
	keyed := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/v1/vault/connections" {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, vault)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	g := startGatewayWith(t, vendorSetup{wrap: keyed}, "expose_keys off")
	res := g.as("alice", "GET", "/authkit/connections", nil)
	expect(t, res, 200, "")
	if strings.Contains(string(res.body), "SECRET-VALUE") || strings.Contains(string(res.body), "test::gmail") {
		t.Fatalf("a key value reached the browser: %s", res.body)
	}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for name, member := range v {
				if strings.HasSuffix(strings.ToLower(name), "key") {
					t.Errorf("field %s%s survived expose_keys off", path, name)
				}
				walk(member, path+name+".")
			}
		case []any:
			for _, member := range v {
				walk(member, path)
			}
		}
	}
	body := res.json(t)
	walk(body, "")
	got, _ := body["rows"].([]any)
	if len(got) != len(rows) {
		t.Fatalf("%d rows of alice's %d: %s", len(got), len(rows), res.body)
	}
	for _, kept := range []string{`"kept-c1"`, `"kept-c7"`, `"kept-label"`, `"kept-keys"`} {
		if !strings.Contains(string(res.body), kept) {
			t.Fatalf("%s, not a key, was dropped: %s", kept, res.body)
		}
	}
}
