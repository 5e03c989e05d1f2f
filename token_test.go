package caddyauthkit

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

func TestTokenMergesEveryPageForTheSignedInUser(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250, WhiteLabel: true})
	g := startGateway(t, pica, "")

	// Neither the body nor the query can choose the identity.
	res := g.do(request{method: "POST", url: appURL + "/authkit/token?identity=bob&identityType=team", user: "alice",
		body: []byte(`{"identity":"bob","identityType":"team"}`), header: map[string]string{"Content-Type": "application/json"}})
	expect(t, res, 200, "")
	token := res.json(t)
	rows := token["rows"].([]any)
	if len(rows) != 250 || token["total"] != 250.0 || token["pages"] != 1.0 || token["page"] != 1.0 || token["isWhiteLabel"] != true {
		t.Fatalf("merged token: %d rows, total %v, pages %v, page %v, isWhiteLabel %v",
			len(rows), token["total"], token["pages"], token["page"], token["isWhiteLabel"])
	}
	for i, row := range rows {
		if id := row.(map[string]any)["connectionDefId"]; id != float64(i+1) {
			t.Fatalf("row %d is connector %v: pages out of order", i, id)
		}
	}
	if _, ok := token["requestId"].(float64); !ok {
		t.Fatalf("requestId %v is not a number", token["requestId"])
	}
	for _, r := range pica.Requests() {
		if r.Endpoint != "authkit" {
			continue
		}
		var body map[string]string
		_ = json.Unmarshal(r.Body, &body)
		if body["identity"] != "alice" || body["identityType"] != "user" {
			t.Fatalf("Pica was asked for %v, want alice/user", body)
		}
		if r.Header.Get("x-pica-secret") != testSecret {
			t.Fatal("the token call did not carry the secret")
		}
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token answer may be cached: %q", res.Header.Get("Cache-Control"))
	}
}

func TestTokenRemembersThePageCountAndCachesFlags(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250, Latency: 50 * time.Millisecond})
	g := startGateway(t, pica, "")

	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	if n := pica.Count("flags"); n != 1 {
		t.Fatalf("%d flags calls for the first token, want 1", n)
	}
	// The second token asks for all three pages in one round: three calls at
	// Pica's latency take about one latency, not three.
	start := time.Now()
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	if n := pica.Count("flags"); n != 1 {
		t.Fatalf("flags asked again (%d calls): not cached", n)
	}
	if n := pica.Count("authkit"); n != 6 {
		t.Fatalf("%d page calls for two 3-page tokens, want 6", n)
	}
	if elapsed := time.Since(start); elapsed > 140*time.Millisecond {
		t.Logf("second token took %v (pages should overlap)", elapsed)
	}
}

func TestTokenSinglePageIsPicasAnswerPlusWhiteLabel(t *testing.T) {
	g := startGateway(t, nil, "")
	res := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, res, 200, "")
	token := res.json(t)
	if len(token["rows"].([]any)) != 30 || token["isWhiteLabel"] != false || token["pages"] != 1.0 {
		t.Fatalf("token %v", token)
	}
}

func TestTokenPageQueryReturnsThatPage(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 25})
	g := startGateway(t, pica, "")
	res := g.as("alice", "POST", "/authkit/token?page=2&limit=10", nil)
	expect(t, res, 200, "")
	token := res.json(t)
	if token["page"] != 2.0 || token["pages"] != 3.0 || len(token["rows"].([]any)) != 10 || token["isWhiteLabel"] != false {
		t.Fatalf("page 2: %v", token)
	}
	expect(t, g.as("alice", "POST", "/authkit/token?page=0", nil), 400, "query_invalid")
	expect(t, g.as("alice", "POST", "/authkit/token?limit=abc", nil), 400, "query_invalid")
}

func TestTokenEmptyAccount(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: -1})
	g := startGateway(t, pica, "")
	res := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, res, 200, "")
	if token := res.json(t); len(token["rows"].([]any)) != 0 || token["total"] != 0.0 {
		t.Fatalf("empty account: %v", token)
	}
}

func TestTokenIdentityRequired(t *testing.T) {
	g := startGateway(t, nil, "")
	for name, tc := range map[string]struct {
		header map[string]string
		status int
		code   string
	}{
		"none":          {nil, 401, "identity_missing"},
		"blank":         {map[string]string{"X-Auth-User": "   "}, 401, "identity_missing"}, // HTTP trims it to nothing
		"too long":      {map[string]string{"X-Auth-User": strings.Repeat("a", 129)}, 400, "identity_invalid"},
		"control":       {map[string]string{"X-Auth-User": "al\tice"}, 400, "identity_invalid"},
		"not UTF-8":     {map[string]string{"X-Auth-User": "al\xffice"}, 400, "identity_invalid"},
		"no type":       {map[string]string{"X-Auth-User": "alice"}, 400, "identity_type_invalid"},
		"bad type":      {map[string]string{"X-Auth-User": "alice", "X-Auth-Type": "admin"}, 400, "identity_type_invalid"},
		"team is valid": {map[string]string{"X-Auth-User": "acme", "X-Auth-Type": "team"}, 200, ""},
	} {
		t.Run(name, func(t *testing.T) {
			res := g.do(request{method: "POST", url: headerURL + "/authkit/token", header: tc.header})
			expect(t, res, tc.status, tc.code)
		})
	}
	// basic_auth in front: no credentials never reach authkit.
	res := g.do(request{method: "POST", url: appURL + "/authkit/token"})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("signed out: %d", res.StatusCode)
	}
	if n := g.pica.Count("authkit"); n != 1 {
		t.Fatalf("%d token calls reached Pica, want only the team's", n)
	}
}

func TestTokenPicaFaults(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := startGateway(t, pica, "timeout 500ms")
	for name, tc := range map[string]struct {
		fault  sandbox.Fault
		status int
		code   string
	}{
		"secret rejected": {sandbox.Fault{Status: 401}, 502, "vendor_rejected_secret"},
		"rate limited":    {sandbox.Fault{Status: 429}, 429, "vendor_rate_limited"},
		"server error":    {sandbox.Fault{Status: 500}, 502, "vendor_unavailable"},
		"garbage":         {sandbox.Fault{Garbage: true}, 502, "vendor_bad_response"},
		"reset":           {sandbox.Fault{Reset: true}, 502, "vendor_unreachable"},
		"slow":            {sandbox.Fault{Delay: 3 * time.Second}, 504, "vendor_timeout"},
		"bad request":     {sandbox.Fault{Status: 400}, 502, "vendor_refused"},
	} {
		t.Run(name, func(t *testing.T) {
			pica.ClearFaults()
			pica.SetFault("authkit", tc.fault)
			start := time.Now()
			res := g.do(request{method: "POST", url: appURL + "/authkit/token", user: "alice",
				header: map[string]string{"Origin": "https://authkit.picaos.com"}})
			expect(t, res, tc.status, tc.code)
			if res.Header.Get("Access-Control-Allow-Origin") != "https://authkit.picaos.com" {
				t.Fatal("error answer without CORS headers")
			}
			if tc.status == 429 && res.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Fatalf("answered after %v: the timeout was not kept", elapsed)
			}
		})
	}

	t.Run("flags failing", func(t *testing.T) {
		pica.ClearFaults()
		pica.SetFault("flags", sandbox.Fault{Status: 500})
		res := g.as("bob", "POST", "/authkit/token", nil)
		expect(t, res, 200, "")
		if res.json(t)["isWhiteLabel"] != false {
			t.Fatal("isWhiteLabel must be false when flags fail")
		}
	})

	t.Run("one page failing", func(t *testing.T) {
		pica.ClearFaults()
		pica.SetFault("authkit", sandbox.Fault{Status: 503, Page: 1, Times: 1})
		expect(t, g.as("bob", "POST", "/authkit/token", nil), 200, "") // retried
	})
}

func TestMergePagesKeepsRowsAsSent(t *testing.T) {
	whiteLabel := true
	got := mergePages([][]byte{[]byte(`{"id":1}`), nil, []byte(`{"id":2,"x":[1, 2]}`)}, []byte(`2`), []byte(`77`), &whiteLabel)
	want := `{"rows":[{"id":1},{"id":2,"x":[1, 2]}],"page":1,"pages":1,"total":2,"requestId":77,"isWhiteLabel":true}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := withWhiteLabel([]byte(" {\"rows\":[]}\n"), false); string(got) != `{"rows":[],"isWhiteLabel":false}` {
		t.Fatalf("withWhiteLabel: %s", got)
	}
}

// FuzzParsePage: whatever Pica sends, parsing never panics; an answer it
// accepts yields rows that form a JSON array whenever the answer was valid
// JSON, with as many rows as encoding/json finds.
func FuzzParsePage(f *testing.F) {
	for _, seed := range []string{
		`{"rows":[{"id":1},{"id":2,"t":"a\"]}"}],"total":2,"pages":1,"page":1,"requestId":7}`,
		`{"rows":[],"total":0}`, `{"rows":null}`, `{}`, `{"rows":[{"id":1}`, `<html>`, `{"rows":"x"}`,
		` {"total":3 , "rows" : [ 1 , [2] , {"a":{}} ] } `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parsePage(body)
		if err != nil || !json.Valid(body) {
			return
		}
		var fields map[string]json.RawMessage // exact keys, as Pica writes them
		var want []json.RawMessage
		if json.Unmarshal(body, &fields) != nil || json.Unmarshal(fields["rows"], &want) != nil ||
			!bytes.Contains(body, []byte(`"rows"`)) {
			return // not a page, or rows named with escapes
		}
		var got []json.RawMessage
		if err := json.Unmarshal(append(append([]byte("["), p.rows...), ']'), &got); err != nil {
			t.Fatalf("rows %q of %q are not an array's inside: %v", p.rows, body, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d rows, encoding/json finds %d, in %q", len(got), len(want), body)
		}
	})
}
