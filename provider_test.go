package caddyauthkit

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// startOne is the gateway with `provider one` against a sandbox that speaks
// One only, so any call in Pica's dialect fails.
func startOne(t *testing.T) *gateway {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Provider: sandbox.ProviderOne, Connectors: 5})
	return startGateway(t, pica, "provider one")
}

func TestOneTokenPagesAreRelayedExactly(t *testing.T) {
	g := startOne(t)
	for _, page := range []string{"1", "2", "3"} {
		res := g.as("alice", "POST", "/authkit/token?page="+page+"&limit=2", nil)
		expect(t, res, 200, "")
		calls := requestsTo(g.pica, sandbox.EndpointToken)
		last := calls[len(calls)-1]
		if last.Path != "/v1/authkit/token" || last.RawQuery != "limit=2&page="+page {
			t.Fatalf("token call %s?%s", last.Path, last.RawQuery)
		}
		// The sandbox's answer to the same request, requestId aside.
		want := g.vendorAnswer(t, last)
		if !sameButRequestID(t, res.body, want) {
			t.Fatalf("page %s: got %s, the vendor said %s", page, res.body, want)
		}
		if bytes.Contains(res.body, []byte("isWhiteLabel")) {
			t.Fatal("One's token carries Pica's isWhiteLabel")
		}
	}
	// Without a page query, all pages merged, still without isWhiteLabel.
	res := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, res, 200, "")
	if rows := res.json(t)["rows"].([]any); len(rows) != 5 || bytes.Contains(res.body, []byte("isWhiteLabel")) {
		t.Fatalf("merged One token: %s", res.body)
	}
	if n := g.pica.Count(sandbox.EndpointFlags); n != 0 {
		t.Fatalf("%d flags calls: One has no flags endpoint", n)
	}
}

// vendorAnswer replays a recorded request against the sandbox.
func (g *gateway) vendorAnswer(t *testing.T, r sandbox.Request) []byte {
	t.Helper()
	req := httptest.NewRequest(r.Method, r.Path+"?"+r.RawQuery, bytes.NewReader(r.Body))
	req.Header = r.Header.Clone()
	rec := httptest.NewRecorder()
	g.pica.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	return body
}

func sameButRequestID(t *testing.T, got, want []byte) bool {
	t.Helper()
	var a, b map[string]any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil {
		return false
	}
	delete(a, "requestId")
	delete(b, "requestId")
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestOneSecretGoesOnlyAsXOneSecret(t *testing.T) {
	g := startOne(t)
	key := map[string]string{"X-Pica-Connection-Key": g.alice.Key, "X-Pica-Secret": "sk_live_1_stolen", "X-One-Secret": "sk_live_1_stolen"}
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/connections", nil), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/connectors", nil), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me", key), 200, "")
	if len(g.pica.Requests()) < 4 {
		t.Fatalf("only %d vendor calls", len(g.pica.Requests()))
	}
	for _, r := range g.pica.Requests() {
		if r.Dialect != sandbox.ProviderOne || r.Header.Values("X-One-Secret")[0] != testSecret ||
			len(r.Header.Values("X-One-Secret")) != 1 || r.Header.Get("X-Pica-Secret") != "" {
			t.Fatalf("%s %s went with secret headers %v / %v", r.Method, r.Path, r.Header.Values("X-One-Secret"), r.Header.Values("X-Pica-Secret"))
		}
	}
}

func TestOnePassthroughTakesEitherKeySpelling(t *testing.T) {
	g := startOne(t)
	for name, action := range map[string]string{
		"X-One-Connection-Key":  "X-One-Action-Id",
		"X-Pica-Connection-Key": "X-Pica-Action-Id",
		"x-pica-connection-key": "x-one-action-id",
	} {
		g.pica.ResetRequests()
		res := g.as("alice", "POST", "/authkit/passthrough/users/me", map[string]string{name: g.alice.Key, action: "conn_mod_def::abc"})
		expect(t, res, 200, "")
		sent := requestsTo(g.pica, sandbox.EndpointPassthrough)
		if len(sent) != 1 {
			t.Fatalf("%s: %d passthrough calls", name, len(sent))
		}
		h := sent[0].Header
		if got := h.Values("X-One-Connection-Key"); len(got) != 1 || got[0] != g.alice.Key ||
			h.Get("X-Pica-Connection-Key") != "" || h.Get("X-Pica-Action-Id") != "" || h.Get("X-One-Action-Id") != "conn_mod_def::abc" {
			t.Fatalf("%s: forwarded %v", name, h)
		}
	}
	// Both spellings, different values: nothing is sent.
	g.pica.ResetRequests()
	res := g.as("alice", "GET", "/authkit/passthrough/users/me", map[string]string{"X-One-Connection-Key": g.alice.Key, "X-Pica-Connection-Key": g.bob.Key})
	expect(t, res, 400, "header_ambiguous")
	if n := len(g.pica.Requests()); n != 0 {
		t.Fatalf("%d vendor calls for an ambiguous key", n)
	}
}

func TestOneRefusesAnotherUsersKeyWithNothingSent(t *testing.T) {
	g := startOne(t)
	for _, name := range []string{"X-One-Connection-Key", "X-Pica-Connection-Key"} {
		res := g.as("alice", "GET", "/authkit/passthrough/users/me", map[string]string{name: g.bob.Key})
		expect(t, res, http.StatusForbidden, "connection_not_owned")
	}
	if n := g.pica.Count(sandbox.EndpointPassthrough); n != 0 {
		t.Fatalf("%d passthrough calls reached the vendor", n)
	}
}

func TestOneServerErrorIs502WithItsCorrelationID(t *testing.T) {
	g := startOne(t)
	key := map[string]string{"X-One-Connection-Key": g.alice.Key}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me", key), 200, "") // ownership cached
	for _, endpoint := range []string{sandbox.EndpointToken, sandbox.EndpointPassthrough, sandbox.EndpointVaultList} {
		g.pica.SetFault(endpoint, sandbox.Fault{Status: 500})
	}
	for _, path := range []string{"/authkit/token", "/authkit/passthrough/users/me", "/authkit/connections"} {
		method := "GET"
		if path == "/authkit/token" {
			method = "POST"
		}
		res := g.as("alice", method, path, key)
		expect(t, res, http.StatusBadGateway, "vendor_unavailable")
		env := res.json(t)["error"].(map[string]any)
		id, _ := env["vendor_correlation_id"].(string)
		if len(id) < 16 || env["retryable"] != true {
			t.Fatalf("%s: envelope %s", path, res.body)
		}
		mustContain(t, readLog(t), id, "the error log line")
	}
}

func TestOneDefaultOriginIsOnesIframe(t *testing.T) {
	g := startOne(t)
	preflight := func(origin string) response {
		return g.do(call{method: "OPTIONS", url: headerURL + "/authkit/token",
			header: map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"}})
	}
	if got := preflight("https://auth.withone.ai").Header.Get("Access-Control-Allow-Origin"); got != "https://auth.withone.ai" {
		t.Fatalf("One's iframe origin got %q", got)
	}
	if got := preflight("https://authkit.picaos.com").Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("Pica's iframe origin got %q under provider one", got)
	}
}
