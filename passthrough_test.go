package caddyauthkit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/internal/inspect"
	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// echo is what the sandbox's third party saw.
type echo struct {
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	RawQuery   string      `json:"rawQuery"`
	Headers    http.Header `json:"headers"`
	BodyLength int         `json:"bodyLength"`
	BodySha256 string      `json:"bodySha256"`
}

func (r response) echo(t *testing.T) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("no echo: %v: %s", err, r.body)
	}
	return e
}

func TestPassthroughForwardsTheOwnersCall(t *testing.T) {
	g := startGateway(t, nil, "")
	body := []byte(`{"to":"someone@example.com"}`)
	res := g.do(call{method: "POST", url: appURL + "/authkit/passthrough/gmail/v1/users/me/messages/send?a=1&a=2&q=x%20y", user: "alice",
		body: body, header: map[string]string{
			"X-Pica-Connection-Key": g.alice.Key,
			"X-Pica-Action-Id":      "conn_mod_def::send",
			"Content-Type":          "application/json",
			"Cookie":                "session=app-session",
			"Proxy-Authorization":   "Basic cHJveHk=",
			"X-Pica-Secret":         "sk_test_1_spoofed",
			"X_Pica_Secret":         "sk_test_1_spoofed",
			"X-Forwarded-For":       "6.6.6.6",
			"X-Forwarded-Host":      "evil.example",
			"Forwarded":             "for=6.6.6.6",
			"X-Real-Ip":             "6.6.6.6",
			"Accept":                "application/json",
			"X-Request-Id":          "trace-1",
		}})
	expect(t, res, 200, "")
	if ct := res.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type %q: the third party's was not restored", ct)
	}
	e := res.echo(t)
	if e.Method != "POST" || e.Path != "/gmail/v1/users/me/messages/send" || e.RawQuery != "a=1&a=2&q=x%20y" {
		t.Fatalf("third party saw %s %s?%s", e.Method, e.Path, e.RawQuery)
	}
	if e.BodySha256 != sha(body) {
		t.Fatal("body changed on the way")
	}
	for name := range e.Headers {
		lower := strings.ToLower(name)
		if lower == "cookie" || lower == "authorization" || lower == "proxy-authorization" || lower == "forwarded" || lower == "x-real-ip" ||
			strings.HasPrefix(lower, "x-forwarded-") || strings.Contains(strings.ReplaceAll(lower, "_", "-"), "pica-secret") {
			t.Errorf("%s reached the third party", name)
		}
	}
	// The call's own headers go through as the app sent them.
	for name, want := range map[string]string{"Content-Type": "application/json", "Accept": "application/json", "X-Request-Id": "trace-1"} {
		if got := e.Headers.Get(name); got != want {
			t.Errorf("the third party got %s %q, want %q", name, got, want)
		}
	}
	if e.Headers.Get("X-Pica-Action-Id") != "conn_mod_def::send" {
		t.Error("the action id was not forwarded")
	}
	reqs := requestsTo(g.pica, "passthrough")
	if len(reqs) != 1 {
		t.Fatalf("%d passthrough calls", len(reqs))
	}
	if got := reqs[0].Header.Values("X-Pica-Secret"); len(got) != 1 || got[0] != testSecret {
		t.Fatalf("Pica got secrets %q, want only the gateway's", got)
	}
}

// TestPassthroughConnectionKeyAndActionIDShapes: a connection key of up to
// 512 bytes is checked against the vault (403 when it is not the caller's);
// a longer one, or one holding a control character (a tab), is refused 400
// before the vault is asked. A space is no control character, in a key or an
// action id; a tab in an action id is refused.
func TestPassthroughConnectionKeyAndActionIDShapes(t *testing.T) {
	g := startGateway(t, nil, "")
	keyOf := func(n int) string {
		head, tail := "test::gmail::default::", "|alice"
		return head + strings.Repeat("0", n-len(head)-len(tail)) + tail
	}
	for _, tc := range []struct {
		name, key, action string
		status            int
		code              string
		askedOfVault      bool
	}{
		{"a key of 512 bytes", keyOf(maxConnectionKeyLen), "", 403, "connection_not_owned", true},
		{"a key of 513 bytes", keyOf(maxConnectionKeyLen + 1), "", 400, "connection_key_invalid", false},
		{"a key with a tab", "test::gmail::default::0\t0|alice", "", 400, "connection_key_invalid", false},
		{"a key with a space", "test::gmail::default::0 0|alice", "", 403, "connection_not_owned", true},
		{"an action id with a tab", g.alice.Key, "conn_mod_def::a\tb", 400, "action_id_invalid", false},
		{"an action id with a space", g.alice.Key, "conn_mod_def::a b", 200, "", true},
	} {
		g.pica.ResetRequests()
		header := map[string]string{"Authorization": basicAuth("alice"), "X-Pica-Connection-Key": tc.key}
		if tc.action != "" {
			header["X-Pica-Action-Id"] = tc.action
		}
		res := rawRequestAt(t, appURL, "GET", "/authkit/passthrough/users/me", header)
		if res.StatusCode != tc.status || tc.code != "" && res.errorCode(t) != tc.code {
			t.Errorf("%s: %d %.200s, want %d %s", tc.name, res.StatusCode, res.body, tc.status, tc.code)
		}
		if asked := g.pica.Count(sandbox.EndpointVaultList) > 0; asked != tc.askedOfVault {
			t.Errorf("%s: the vault was asked: %v, want %v", tc.name, asked, tc.askedOfVault)
		}
	}
}

func TestPassthroughRefusesConnectionsOfOthers(t *testing.T) {
	g := startGateway(t, nil, "")
	aliceTeam := g.pica.AddConnection("alice", "team", "hubspot")
	unowned := g.pica.AddConnection("", "user", "notion")

	for name, tc := range map[string]struct {
		key          string
		askedOfVault bool
	}{
		"bob's key":                  {g.bob.Key, false}, // its |bob suffix says so
		"a team's key of that name":  {aliceTeam.Key, true},
		"a key without identity":     {unowned.Key, true},
		"an unknown key":             {"test::gmail::default::00000000000000000000000000000000|alice", true},
		"bob's key renamed to alice": {strings.TrimSuffix(g.bob.Key, "|bob") + "|alice", true},
	} {
		t.Run(name, func(t *testing.T) {
			g.pica.ResetRequests()
			res := g.as("alice", "GET", "/authkit/passthrough/users/me", map[string]string{"X-Pica-Connection-Key": tc.key})
			expect(t, res, http.StatusForbidden, "connection_not_owned")
			if n := g.pica.Count("passthrough"); n != 0 {
				t.Fatalf("Pica's passthrough was called %d times", n)
			}
			if asked := g.pica.Count("vault_list") > 0; asked != tc.askedOfVault {
				t.Fatalf("asked the vault: %v, want %v", asked, tc.askedOfVault)
			}
		})
	}

	expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me", nil), http.StatusBadRequest, "connection_key_missing")
}

func TestOwnershipIsCachedAndCoalesced(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Latency: 100 * time.Millisecond})
	g := startGateway(t, pica, "")

	for _, res := range concurrently(20, func(int) response {
		return g.as("alice", "GET", "/authkit/passthrough/users/me", map[string]string{"X-Pica-Connection-Key": g.alice.Key})
	}) {
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if n := pica.Count("vault_list"); n != 1 {
		t.Fatalf("%d ownership lookups for 20 concurrent calls with one key, want 1", n)
	}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me", map[string]string{"X-Pica-Connection-Key": g.alice.Key}), 200, "")
	if n := pica.Count("vault_list"); n != 1 {
		t.Fatalf("the positive answer was not cached: %d lookups", n)
	}
}

// pathAttacks try to reach other Pica endpoints with the gateway's secret.
var pathAttacks = []string{
	"/authkit/passthrough/../../v1/vault/connections",
	"/authkit/passthrough/..%2f..%2fvault%2fconnections",
	"/authkit/passthrough/%2e%2e/%2e%2e/vault/connections",
	"/authkit/passthrough/%2E%2E/vault/connections",
	"/authkit/passthrough/%2e./vault",
	"/authkit/passthrough/.%2E/vault",
	"/authkit/passthrough/%252e%252e/vault/connections",
	"/authkit/passthrough/%25252e%25252e/vault",
	"/authkit/passthrough/..%5c..%5cvault",
	"/authkit/passthrough/..\\..\\vault",
	"/authkit/passthrough/./../vault",
	"/authkit/passthrough/users/../../../authkit",
	"/authkit/passthrough/..;/vault/connections",
	"/authkit/passthrough/users%2f..%2f..%2fvault",
	"/authkit/passthrough/users/%2e%2e%2f%2e%2e%2fvault",
	"/authkit/passthrough/%c0%ae%c0%ae/vault",
	"/authkit/passthrough/%ef%bc%8e%ef%bc%8e/vault",
	"/authkit/passthrough/%u002e%u002e/vault",
	"/authkit/passthrough/..%00/vault",
	"/authkit/passthrough//..//vault",
	"/authkit/passthrough/",
	"/authkit/passthrough",
	"/authkit/%70assthrough/..%2fvault",
	"/authkit/passthrough/%2F%2Fevil.example/x",
}

// TestPassthroughPathAttacks: no path reaches another endpoint of the
// vendor. A path under the prefix as Caddy's matchers read it (cleaned,
// any case) is refused in the envelope (400, or 404 for no route); one
// that cleans to outside the prefix is the app's, as every matcher of the
// site sees it.
func TestPassthroughPathAttacks(t *testing.T) {
	g := startGateway(t, nil, "")
	for _, target := range pathAttacks {
		res := rawRequestAt(t, appURL, "GET", target, map[string]string{
			"Authorization":         "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice")),
			"X-Pica-Connection-Key": g.alice.Key,
		})
		// (A path Go's server cannot parse is its own plain 400.)
		refused := res.StatusCode == http.StatusBadRequest || res.StatusCode == http.StatusNotFound
		if !refused && string(res.body) != "app" {
			t.Errorf("%s: %d %s, want refused or the app's answer", target, res.StatusCode, res.body)
		}
	}
	if reqs := g.pica.Requests(); len(reqs) != 0 {
		t.Fatalf("a path attack reached Pica: %s %s", reqs[0].Method, reqs[0].Path)
	}
}

func TestPassthroughStreamsLargeBodies(t *testing.T) {
	g := startGateway(t, nil, "")
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	res := g.do(call{method: "PUT", url: appURL + "/authkit/passthrough/files/big", user: "alice", body: body,
		header: map[string]string{"X-Pica-Connection-Key": g.alice.Key}})
	expect(t, res, 200, "")
	if e := res.echo(t); e.BodyLength != len(body) || e.BodySha256 != sha(body) {
		t.Fatalf("third party got %d bytes", e.BodyLength)
	}
	res = g.as("alice", "GET", "/authkit/passthrough/files/big?__bytes=8388608", map[string]string{"X-Pica-Connection-Key": g.alice.Key})
	expect(t, res, 200, "")
	if len(res.body) != 8<<20 || res.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("download: %d bytes, %q", len(res.body), res.Header.Get("Content-Type"))
	}
}

func TestPassthroughAnswersByWhoseAnswerItIs(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := startGateway(t, pica, "")
	key := map[string]string{"X-Pica-Connection-Key": g.alice.Key, "Origin": "http://app.test"}

	// The third party's 401: the user must re-authorise; it passes as is.
	res := g.as("alice", "GET", "/authkit/passthrough/users/me?__status=401", key)
	expect(t, res, 401, "")
	if res.echo(t).Path != "/users/me" || res.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("third-party 401 was not passed through: %s", res.body)
	}

	for name, tc := range map[string]struct {
		fault  sandbox.Fault
		status int
		code   string
	}{
		"Pica rejects the secret": {sandbox.Fault{Status: 401}, 502, "vendor_rejected_secret"},
		"Pica rate-limits":        {sandbox.Fault{Status: 429}, 429, "vendor_rate_limited"},
		"Pica fails":              {sandbox.Fault{Status: 500}, 502, "vendor_unavailable"},
		"Pica resets":             {sandbox.Fault{Reset: true}, 502, ""},
	} {
		t.Run(name, func(t *testing.T) {
			pica.ClearFaults()
			pica.SetFault("passthrough", tc.fault)
			if tc.code == "" { // a reset mid-body: the status line already passed
				req, _ := http.NewRequest("GET", appURL+"/authkit/passthrough/users/me", nil)
				req.SetBasicAuth("alice", "alice")
				req.Header.Set("X-Pica-Connection-Key", g.alice.Key)
				res, err := g.tester.Client.Do(req)
				if err == nil {
					_, err = io.ReadAll(res.Body)
					res.Body.Close()
				}
				if err == nil {
					t.Fatal("a body cut off by Pica arrived as if complete")
				}
				return
			}
			res := g.as("alice", "GET", "/authkit/passthrough/users/me", key)
			expect(t, res, tc.status, tc.code)
			if res.Header.Get("Access-Control-Allow-Origin") != "http://app.test" {
				t.Fatal("no CORS headers on the error")
			}
			if tc.status == 429 && res.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		})
	}
}

func TestPassthroughAllowLists(t *testing.T) {
	g := startGateway(t, nil, "platforms slack hubspot\n\t\tactions conn_mod_def::ok")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{
		"X-Pica-Connection-Key": g.alice.Key, "X-Pica-Action-Id": "conn_mod_def::ok"}), 403, "platform_not_allowed")
	expect(t, g.as("bob", "GET", "/authkit/passthrough/x", map[string]string{
		"X-Pica-Connection-Key": g.bob.Key}), 403, "action_not_allowed")
	expect(t, g.as("bob", "GET", "/authkit/passthrough/x", map[string]string{
		"X-Pica-Connection-Key": g.bob.Key, "X-Pica-Action-Id": "conn_mod_def::other"}), 403, "action_not_allowed")
	if reqs := g.pica.Requests(); len(reqs) != 0 {
		t.Fatalf("a refused call reached Pica: %s", reqs[0].Path)
	}
	expect(t, g.as("bob", "GET", "/authkit/passthrough/x", map[string]string{
		"X-Pica-Connection-Key": g.bob.Key, "X-Pica-Action-Id": "conn_mod_def::ok"}), 200, "")
}

func TestOwnershipOffLetsAnyKeyThrough(t *testing.T) {
	g := startGateway(t, nil, "ownership off")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}), 200, "")
	if n := g.pica.Count("vault_list"); n != 0 {
		t.Fatalf("ownership off still asked the vault %d times", n)
	}
}

func TestHeaderIdentityIsNotForwarded(t *testing.T) {
	g := startGateway(t, nil, "")
	res := g.do(call{method: "GET", url: headerURL + "/authkit/passthrough/x", header: map[string]string{
		"X-Auth-User": "alice", "X-Auth-Type": "user", "X-Pica-Connection-Key": g.alice.Key}})
	expect(t, res, 200, "")
	if v := res.echo(t).Headers.Get("X-Auth-User"); v != "" {
		t.Fatalf("the identity header reached the third party: %q", v)
	}
}

func requestsTo(pica *sandbox.Server, endpoint string) []sandbox.Request {
	var out []sandbox.Request
	for _, r := range pica.Requests() {
		if r.Endpoint == endpoint {
			out = append(out, r)
		}
	}
	return out
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestPassthroughBodyNamesOnlyTheCheckedKey(t *testing.T) {
	g := startGateway(t, nil, "")
	mine, foreign := g.alice.Key, g.bob.Key
	call := func(body, contentType string, extra map[string]string) response {
		h := map[string]string{"X-Pica-Connection-Key": mine, "Content-Type": contentType}
		for k, v := range extra {
			h[k] = v
		}
		return g.do(call{method: "POST", url: appURL + "/authkit/passthrough/actions/run", user: "alice", body: []byte(body), header: h})
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	for _, attack := range []struct{ body, contentType, code string }{
		{`{"connectionKey":` + q(foreign) + `}`, "application/json", "connection_not_owned"},
		{`{"input":{"connectionKey":` + q(foreign) + `}}`, "application/json", "connection_not_owned"},
		{`{"connection\u004bey":` + q(foreign) + `}`, "application/json", "connection_not_owned"},
		{`{"connectionKey":` + q(mine) + `,"connectionKey":` + q(foreign) + `}`, "application/json", "connection_not_owned"},
		{`{"connectionKey":` + q(mine) + `,"connectionKey":` + q(mine) + `}`, "application/json", "body_ambiguous"},
		{`{"ConnectionKey":` + q(foreign) + `}`, "application/json", "connection_not_owned"},
		{`{"connection_key":` + q(foreign) + `}`, "application/json", "connection_not_owned"},
		{`{"CONNECTION-KEY":` + q(foreign) + `}`, "application/json", "connection_not_owned"},
		{`{"connectionＫey":` + q(foreign) + `}`, "application/json", "connection_not_owned"},
		{`{"connection\u212aey":` + q(foreign) + `}`, "application/json", "connection_not_owned"}, // Kelvin sign
		{`[{"a":1},{"items":[{"connectionKey":` + q(foreign) + `}]}]`, "application/json", "connection_not_owned"},
		{`{"connectionKey":{"value":` + q(foreign) + `}}`, "application/json", "connection_not_owned"},
		{`{"connectionKey":null}`, "application/json", "connection_not_owned"},
		{"\ufeff \n\t{\"connectionKey\":" + q(foreign) + `}`, "text/plain", "connection_not_owned"},
		{`{"connectionKey":` + q(foreign) + `}`, "application/octet-stream", "connection_not_owned"},
		{`{"a":1}` + "\n" + `{"connectionKey":` + q(foreign) + `}`, "application/x-ndjson", "connection_not_owned"},
		{`{"body":"{\"connectionKey\":\"` + foreign + `\"}"}`, "application/json", "connection_not_owned"},
		{`{"connectionKey":` + q(foreign) + `,}`, "application/json", "connection_not_owned"},
		{`{"connectionKey":` + q(foreign), "application/json", "connection_not_owned"},
		{`{"a":1,}`, "application/json", "body_invalid"},
		{`{"a":[1,2}`, "text/plain", "body_invalid"},
		{"connectionKey=" + url.QueryEscape(foreign), "application/x-www-form-urlencoded", "connection_not_owned"},
		{"input%5BconnectionKey%5D=" + url.QueryEscape(foreign), "application/x-www-form-urlencoded", "connection_not_owned"},
	} {
		res := call(attack.body, attack.contentType, nil)
		if res.StatusCode < 400 || res.StatusCode >= 500 || res.errorCode(t) != attack.code {
			t.Errorf("%s %q: %d %s, want %s", attack.contentType, attack.body, res.StatusCode, res.body, attack.code)
		}
	}
	if n := len(requestsTo(g.pica, "passthrough")); n != 0 {
		t.Fatalf("%d refused bodies reached the vendor", n)
	}

	// Encodings the check cannot read are refused, not sent unchecked.
	res := call(`{"connectionKey":`+q(foreign)+`}`, "application/json", map[string]string{"Content-Encoding": "gzip"})
	expect(t, res, http.StatusUnsupportedMediaType, "body_encoding_unsupported")
	res = call(`{"connectionKey":`+q(foreign)+`}`, "application/json; charset=utf-16", nil)
	expect(t, res, http.StatusUnsupportedMediaType, "body_encoding_unsupported")
	big := `{"pad":"` + strings.Repeat("x", inspect.MaxInspectedBody) + `","connectionKey":` + q(foreign) + `}`
	expect(t, call(big, "application/json", nil), http.StatusRequestEntityTooLarge, "body_too_large")
	if n := len(requestsTo(g.pica, "passthrough")); n != 0 {
		t.Fatalf("%d unreadable bodies reached the vendor", n)
	}

	// The owner's own key, and bodies that name none, go through unchanged.
	for _, ok := range []struct{ body, contentType string }{
		{`{"connectionKey":` + q(mine) + `,"input":{"connectionKey":` + q(mine) + `}}`, "application/json"},
		{`{"to":"x@example.com","note":"connectionKey"}`, "application/json"},
		{"\x89PNG\r\n{\"connectionKey\":" + q(foreign) + "}", "image/png"},
		{"connectionKey=" + url.QueryEscape(mine) + "&x=1", "application/x-www-form-urlencoded"},
	} {
		res := call(ok.body, ok.contentType, nil)
		expect(t, res, 200, "")
		if e := res.echo(t); e.BodySha256 != sha([]byte(ok.body)) {
			t.Errorf("%q changed on the way", ok.body)
		}
	}
}

// TestPassthroughChunkedBodyIsChecked: a chunked JSON body, sent as raw
// bytes, is checked like any other; a broken chunked body is the caller's
// 400 and nothing reaches the vendor.
func TestPassthroughChunkedBodyIsChecked(t *testing.T) {
	g := startGateway(t, nil, "")
	head := "POST /authkit/passthrough/actions/run HTTP/1.1\r\nHost: localhost:9080\r\n" +
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice")) + "\r\n" +
		"X-Pica-Connection-Key: " + g.alice.Key + "\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }
	foreign := chunk(`{"input":`) + chunk(`{"connectionKey":"`+g.bob.Key+`"}}`) + "0\r\n\r\n"
	answers := rawExchange(t, "127.0.0.1:9080", head+foreign, false)
	if len(answers) != 1 || answers[0].StatusCode != http.StatusForbidden {
		t.Fatalf("a chunked body naming bob's key was not refused: %d answers", len(answers))
	}
	for _, broken := range []string{
		chunk(`{"a":`) + "zz\r\nxx",         // a chunk size that is not hex
		chunk(`{"a":`) + "10\r\nshort",      // the connection closes mid-chunk
		"\x89PNG" + strings.Repeat("x", 10), // binary, then a broken framing
	} {
		answers := rawExchange(t, "127.0.0.1:9080", head+broken, true)
		for _, res := range answers {
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("%q: answered %d, want 400", broken, res.StatusCode)
			}
		}
	}
	for _, r := range requestsTo(g.pica, "passthrough") {
		if strings.Contains(string(r.Body), "connectionKey") {
			t.Fatalf("a refused body reached the vendor: %q", r.Body)
		}
	}
}

// TestPassthroughBodyBrokenWhileStreamingIsTheCallersFault: a binary body
// (not checked, so streamed to the vendor as it comes) whose chunked
// framing breaks once the proxy is sending it, on a connection the client
// keeps open, is the caller's 400 body_invalid, not a vendor failure.
func TestPassthroughBodyBrokenWhileStreamingIsTheCallersFault(t *testing.T) {
	g := startGateway(t, nil, "")
	raw := "POST /authkit/passthrough/files/up HTTP/1.1\r\nHost: localhost:9080\r\n" +
		"Authorization: " + basicAuth("alice") + "\r\nX-Pica-Connection-Key: " + g.alice.Key + "\r\n" +
		"Content-Type: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
		"8\r\n\x89PNG\r\n\x1a\n\r\n" + "zz\r\nnot a chunk\r\n"
	for range 3 {
		res := rawBytesAt(t, "127.0.0.1:9080", raw)
		if res.StatusCode != http.StatusBadRequest || res.errorCode(t) != "body_invalid" {
			t.Fatalf("a body broken while streaming: %d %.200s, want 400 body_invalid", res.StatusCode, res.body)
		}
	}
}

// vendorSaw is a passthrough call as the vendor received it: its headers,
// and its trailers once its body was read to the end.
type vendorSaw struct {
	header, trailer http.Header
	body            []byte
}

// passthroughWatch records what reaches the vendor's passthrough, trailers
// included (the sandbox records no trailer), then lets the sandbox answer.
type passthroughWatch struct {
	mu   sync.Mutex
	seen []vendorSaw
}

func (p *passthroughWatch) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/passthrough/") {
			body, _ := io.ReadAll(r.Body) // to EOF: only then are trailers known
			p.mu.Lock()
			p.seen = append(p.seen, vendorSaw{header: r.Header.Clone(), trailer: r.Trailer.Clone(), body: body})
			p.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func (p *passthroughWatch) calls() []vendorSaw {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// TestRequestTrailersNeverReachTheVendor: a chunked passthrough call from
// alice, with her own key in the header, announces trailers that name bob's
// key, an action id and a secret of the client's, and sends them after its
// streamed body. The vendor gets alice's key, the gateway's secret and the
// body, and no trailer at all; with an actions allow-list, an action id
// in a trailer neither replaces the checked one nor stands in for a
// missing one.
func TestRequestTrailersNeverReachTheVendor(t *testing.T) {
	watch := new(passthroughWatch)
	g := startGatewayWith(t, vendorSetup{wrap: watch.wrap}, "")
	const clientSecret = "sk_test_1_clientSENTthisSECRET"
	send := func(actionHeader, trailerAction string) response {
		t.Helper()
		var head strings.Builder
		head.WriteString("POST /authkit/passthrough/messages HTTP/1.1\r\nHost: localhost:9080\r\nConnection: close\r\n" +
			"Authorization: " + basicAuth("alice") + "\r\nX-Pica-Connection-Key: " + g.alice.Key + "\r\n")
		if actionHeader != "" {
			head.WriteString("X-Pica-Action-Id: " + actionHeader + "\r\n")
		}
		head.WriteString("Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n" +
			"Trailer: X-Pica-Connection-Key, X-Pica-Action-Id, X-Pica-Secret, X-One-Connection-Key\r\n\r\n")
		body := "5\r\nhello\r\n6\r\n world\r\n0\r\n" +
			"X-Pica-Connection-Key: " + g.bob.Key + "\r\nX-One-Connection-Key: " + g.bob.Key + "\r\n" +
			"X-Pica-Action-Id: " + trailerAction + "\r\nX-Pica-Secret: " + clientSecret + "\r\n\r\n"
		return rawBytesAt(t, "127.0.0.1:9080", head.String()+body)
	}
	check := func(when string, wantAction string) {
		t.Helper()
		calls := watch.calls()
		if len(calls) == 0 {
			t.Fatalf("%s: nothing reached the vendor", when)
		}
		saw := calls[len(calls)-1]
		if keys := saw.header.Values("X-Pica-Connection-Key"); len(keys) != 1 || keys[0] != g.alice.Key {
			t.Errorf("%s: the vendor got connection keys %q, want alice's only", when, keys)
		}
		if secrets := saw.header.Values("X-Pica-Secret"); len(secrets) != 1 || secrets[0] != testSecret {
			t.Errorf("%s: the vendor got %d secret values, not the gateway's alone", when, len(secrets))
		}
		if actions := saw.header.Values("X-Pica-Action-Id"); wantAction == "" && len(actions) != 0 ||
			wantAction != "" && (len(actions) != 1 || actions[0] != wantAction) {
			t.Errorf("%s: the vendor got action ids %q, want %q", when, actions, wantAction)
		}
		if len(saw.trailer) != 0 || saw.header.Get("Trailer") != "" || saw.header.Get("X-One-Connection-Key") != "" {
			t.Errorf("%s: the vendor got trailers %v (Trailer header %q)", when, saw.trailer, saw.header.Get("Trailer"))
		}
		if string(saw.body) != "hello world" {
			t.Errorf("%s: the vendor got the body %q", when, saw.body)
		}
	}

	expect(t, send("", "conn_mod_def::evil"), 200, "")
	check("no allow-list", "")

	g.load("actions conn_mod_def::ok")
	expect(t, send("conn_mod_def::ok", "conn_mod_def::evil"), 200, "")
	check("allowed action in the header, another in a trailer", "conn_mod_def::ok")
	before := len(watch.calls())
	expect(t, send("", "conn_mod_def::ok"), http.StatusForbidden, "action_not_allowed")
	expect(t, send("", "conn_mod_def::evil"), http.StatusForbidden, "action_not_allowed")
	if n := len(watch.calls()); n != before {
		t.Fatalf("%d calls with an action id in a trailer only reached the vendor", n-before)
	}
}

// TestPassthroughChecksMultipartAndRefusesWideJSONThroughCaddy: through a
// real Caddy, a multipart/form-data body that names bob's connection key
// (as a field, as input[connectionKey], inside a JSON part) is 403
// connection_not_owned, and JSON in UTF-16 or UTF-32 (big or little
// endian, with or without a byte order mark), which the check cannot read,
// is 415, whichever key it names and whatever Content-Type it claims.
// Nothing refused reaches the vendor; alice's own key goes through.
func TestPassthroughChecksMultipartAndRefusesWideJSONThroughCaddy(t *testing.T) {
	g := startGateway(t, nil, "")
	mine, foreign := g.alice.Key, g.bob.Key
	post := func(body []byte, contentType string) response {
		t.Helper()
		header := map[string]string{"X-Pica-Connection-Key": mine}
		if contentType != "" {
			header["Content-Type"] = contentType
		}
		return g.do(call{method: "POST", url: appURL + "/authkit/passthrough/actions/run", user: "alice", body: body, header: header})
	}
	// form builds a multipart/form-data body: fields, then parts with
	// their own headers.
	type part struct {
		header textproto.MIMEHeader
		body   string
	}
	form := func(fields [][2]string, parts ...part) ([]byte, string) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for _, f := range fields {
			_ = w.WriteField(f[0], f[1])
		}
		for _, p := range parts {
			pw, _ := w.CreatePart(p.header)
			_, _ = io.WriteString(pw, p.body)
		}
		_ = w.Close()
		return b.Bytes(), w.FormDataContentType()
	}
	jsonPart := func(disposition, body string) part {
		return part{textproto.MIMEHeader{"Content-Disposition": {disposition}, "Content-Type": {"application/json"}}, body}
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }

	for name, tc := range map[string]struct {
		fields [][2]string
		parts  []part
	}{
		"a connectionKey field":         {fields: [][2]string{{"to", "x@example.com"}, {"connectionKey", foreign}}},
		"an input[connectionKey] field": {fields: [][2]string{{"input[connectionKey]", foreign}}},
		"an input.connectionKey field":  {fields: [][2]string{{"input.connectionKey", foreign}}},
		"the owner's field and bob's":   {fields: [][2]string{{"connectionKey", mine}, {"input[connectionKey]", foreign}}},
		"a JSON part": {parts: []part{jsonPart(`form-data; name="payload"`,
			`{"connectionKey":`+q(foreign)+`}`)}},
		"a nested JSON part": {parts: []part{jsonPart(`form-data; name="payload"`,
			`{"input":{"items":[{"connectionKey":`+q(foreign)+`}]}}`)}},
		"a JSON file part": {fields: [][2]string{{"connectionKey", mine}}, parts: []part{jsonPart(
			`form-data; name="file"; filename="run.json"`, `{"connectionKey":`+q(foreign)+`}`)}},
	} {
		body, contentType := form(tc.fields, tc.parts...)
		res := post(body, contentType)
		if res.StatusCode != http.StatusForbidden || res.errorCode(t) != "connection_not_owned" {
			t.Errorf("multipart with %s: %d %.200s, want 403 connection_not_owned", name, res.StatusCode, res.body)
		}
	}

	// wide encodes ASCII text in UTF-16 or UTF-32, either byte order.
	wide := func(s string, width int, bigEndian bool) []byte {
		var out []byte
		for _, c := range []byte(s) {
			unit := make([]byte, width)
			if bigEndian {
				unit[width-1] = c
			} else {
				unit[0] = c
			}
			out = append(out, unit...)
		}
		return out
	}
	for _, key := range []string{foreign, mine} {
		text := `{"connectionKey":` + q(key) + `}`
		for _, enc := range []struct {
			name      string
			width     int
			bigEndian bool
			bom       string
		}{
			{"UTF-16BE", 2, true, "\xfe\xff"},
			{"UTF-16LE", 2, false, "\xff\xfe"},
			{"UTF-32BE", 4, true, "\x00\x00\xfe\xff"},
			{"UTF-32LE", 4, false, "\xff\xfe\x00\x00"},
		} {
			for _, bom := range []string{"", enc.bom} {
				for _, contentType := range []string{"application/json", "text/plain", ""} {
					body := append([]byte(bom), wide(text, enc.width, enc.bigEndian)...)
					res := post(body, contentType)
					if res.StatusCode != http.StatusUnsupportedMediaType || res.errorCode(t) != "body_encoding_unsupported" {
						t.Errorf("%s JSON (BOM %v, Content-Type %q) naming %s's key: %d %.200s, want 415",
							enc.name, bom != "", contentType, map[bool]string{true: "bob", false: "alice"}[key == foreign], res.StatusCode, res.body)
					}
				}
			}
		}
	}
	if n := len(requestsTo(g.pica, sandbox.EndpointPassthrough)); n != 0 {
		t.Fatalf("%d refused bodies reached the vendor", n)
	}

	// The owner's own key, in a field and in a JSON part, goes through as sent.
	body, contentType := form([][2]string{{"connectionKey", mine}, {"note", "hi"}},
		jsonPart(`form-data; name="payload"`, `{"input":{"connectionKey":`+q(mine)+`}}`))
	res := post(body, contentType)
	expect(t, res, 200, "")
	if e := res.echo(t); e.BodySha256 != sha(body) {
		t.Fatal("the owner's multipart body changed on the way")
	}
}
