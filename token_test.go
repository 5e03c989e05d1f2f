package caddyauthkit

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

func TestTokenMergesEveryPageForTheSignedInUser(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250, WhiteLabel: true})
	g := startGateway(t, pica, "")

	// Neither the body nor the query can choose the identity.
	res := g.do(call{method: "POST", url: appURL + "/authkit/token?identity=bob&identityType=team", user: "alice",
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
		if r.Endpoint != sandbox.EndpointToken {
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

// pageBarrier stands between the gateway and the vendor: once armed, it
// holds page 1 of a token until pages 2..pages have arrived too, which only
// happens when they were all requested in one round. If they do not come,
// page 1 is answered at a deadline and the miss is recorded.
type pageBarrier struct {
	pages   int
	armed   atomic.Bool
	missed  atomic.Bool
	arrived chan string
}

func newPageBarrier(pages int) *pageBarrier {
	return &pageBarrier{pages: pages, arrived: make(chan string, 1000)}
}

func (b *pageBarrier) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/authkit" || !b.armed.Load() {
			next.ServeHTTP(w, r)
			return
		}
		if page := r.URL.Query().Get("page"); page != "1" {
			b.arrived <- page
			next.ServeHTTP(w, r)
			return
		}
		deadline := time.NewTimer(3 * time.Second) // a failure guard, not a wait
		defer deadline.Stop()
		for range b.pages - 1 {
			select {
			case <-b.arrived:
			case <-deadline.C:
				b.missed.Store(true)
				next.ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func TestTokenRemembersThePageCountAndCachesFlags(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250, WhiteLabel: true})
	barrier := newPageBarrier(3)
	g := startGatewayWith(t, vendorSetup{pica: pica, wrap: barrier.wrap}, "")

	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	if n := pica.Count("flags"); n != 1 {
		t.Fatalf("%d flags calls for the first token, want 1", n)
	}
	// The second token asks for all three pages in one round: pages 2 and 3
	// reach the vendor while page 1 is still unanswered.
	barrier.armed.Store(true)
	res := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, res, 200, "")
	if barrier.missed.Load() {
		t.Fatal("the second token waited for page 1 before asking for pages 2 and 3: the page count was not remembered")
	}
	if rows := res.json(t)["rows"].([]any); len(rows) != 250 {
		t.Fatalf("second token has %d rows, want 250", len(rows))
	}
	if n := pica.Count("flags"); n != 1 {
		t.Fatalf("flags asked again (%d calls): not cached", n)
	}
	if n := pica.Count(sandbox.EndpointToken); n != 6 {
		t.Fatalf("%d page calls for two 3-page tokens, want 6", n)
	}
}

// TestTokenRemembersFewerPagesToo: when the account shrinks, the next
// token asks for pages that no longer exist once, and the one after only
// for the pages there are.
func TestTokenRemembersFewerPagesToo(t *testing.T) {
	var pages atomic.Int64
	pages.Store(3)
	shrink := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/authkit" && pages.Load() == 1 {
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				// One page of everything: as if the account now had 100 connectors.
				body := bytes.Replace(rec.Body.Bytes(), []byte(`"pages":3`), []byte(`"pages":1`), 1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(rec.Code)
				_, _ = w.Write(body)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250})
	g := startGatewayWith(t, vendorSetup{pica: pica, wrap: shrink}, "")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	pages.Store(1)
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "") // asks 3, learns 1
	pica.ResetRequests()
	res := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, res, 200, "")
	if n := pica.Count(sandbox.EndpointToken); n != 1 {
		t.Fatalf("%d page calls after the vendor reported one page, want 1", n)
	}
	if rows := res.json(t)["rows"].([]any); len(rows) != 100 {
		t.Fatalf("%d rows, want page 1's 100", len(rows))
	}
}

// TestTokenRefusesAHostilePageCount: a vendor that reports 100000 pages
// gets a bounded number of calls and a 502; the count is not remembered,
// so the next caller, once the vendor answers right, is unharmed.
func TestTokenRefusesAHostilePageCount(t *testing.T) {
	for _, reported := range []string{"100000", "101"} {
		t.Run(reported, func(t *testing.T) {
			var hostile atomic.Bool
			hostile.Store(true)
			var calls atomic.Int64
			wrap := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/v1/authkit" || !hostile.Load() {
						next.ServeHTTP(w, r)
						return
					}
					calls.Add(1)
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `{"rows":[{"id":1}],"total":9999999,"pages":`+reported+`,"page":1,"requestId":1}`)
				})
			}
			pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250})
			g := startGatewayWith(t, vendorSetup{pica: pica, wrap: wrap}, "")
			expect(t, g.as("alice", "POST", "/authkit/token", nil), 502, "vendor_bad_response")
			expect(t, g.as("alice", "POST", "/authkit/token", nil), 502, "vendor_bad_response")
			if n := calls.Load(); n > 2*(pageWorkers+1) {
				t.Fatalf("%d page calls for two tokens of a hostile vendor, want at most %d", n, 2*(pageWorkers+1))
			}

			hostile.Store(false)
			pica.ResetRequests()
			res := g.as("alice", "POST", "/authkit/token", nil)
			expect(t, res, 200, "")
			if n := pica.Count(sandbox.EndpointToken); n != 3 {
				t.Fatalf("%d page calls after the hostile answers, want the 3 pages there are", n)
			}
			if rows := res.json(t)["rows"].([]any); len(rows) != 250 {
				t.Fatalf("%d rows, want 250", len(rows))
			}
		})
	}
}

// TestTokenTakesTheMostPagesATokenMayHave: 100 pages is the bound, not
// beyond it; every page is asked for and merged in order.
func TestTokenTakesTheMostPagesATokenMayHave(t *testing.T) {
	wrap := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			switch r.URL.Path {
			case "/v1/authkit":
				page := r.URL.Query().Get("page")
				_, _ = io.WriteString(w, `{"rows":[{"id":`+page+`}],"total":100,"pages":100,"page":`+page+`,"requestId":1}`)
			default:
				_, _ = io.WriteString(w, `{"authkitWhitelist":false}`)
			}
		})
	}
	g := startGatewayWith(t, vendorSetup{wrap: wrap}, "")
	res := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, res, 200, "")
	rows := res.json(t)["rows"].([]any)
	if len(rows) != maxTokenPages {
		t.Fatalf("%d rows, want one from each of %d pages", len(rows), maxTokenPages)
	}
	for i, row := range rows {
		if id := row.(map[string]any)["id"]; id != float64(i+1) {
			t.Fatalf("row %d is from page %v", i, id)
		}
	}
}

// TestTokenStopsAtTheFirstFailingPage: when a page fails, the pages not
// yet asked for are not asked for, those in flight are abandoned, and the
// caller gets the failure (not a crash) at once.
func TestTokenStopsAtTheFirstFailingPage(t *testing.T) {
	var failing, abandoned atomic.Bool
	abandoned.Store(true)
	var calls atomic.Int64
	page1Answered := make(chan struct{})
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/authkit" || !failing.Load() {
				next.ServeHTTP(w, r)
				return
			}
			calls.Add(1)
			if r.URL.Query().Get("page") == "1" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"message":"Invalid page"}`)
				close(page1Answered)
				return
			}
			// Other pages wait for page 1's failure, then for the gateway
			// to give up on them (the body is read so that the server
			// notices the connection closing).
			_, _ = io.Copy(io.Discard, r.Body)
			guard := time.NewTimer(5 * time.Second) // a failure guard, not a wait
			defer guard.Stop()
			select {
			case <-page1Answered:
			case <-guard.C:
				return
			}
			select {
			case <-r.Context().Done():
			case <-guard.C:
				abandoned.Store(false)
			}
		})
	}
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 2500})
	g := startGatewayWith(t, vendorSetup{pica: pica, wrap: wrap}, "")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "") // 25 pages remembered
	failing.Store(true)
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 502, "vendor_refused")
	if n := calls.Load(); n > pageWorkers {
		t.Fatalf("%d page calls after page 1 failed, want at most the %d in flight", n, pageWorkers)
	}
	if !abandoned.Load() {
		t.Fatal("pages in flight were not abandoned when page 1 failed")
	}
}

// TestTokenAndConnectorsRefuseAnswersOfTheWrongShape: a 2xx that is not a
// list (an empty object, an array, a string, an error body) is a
// vendor_bad_response, and it is not cached: once the vendor answers right,
// the next call works.
func TestTokenAndConnectorsRefuseAnswersOfTheWrongShape(t *testing.T) {
	for _, route := range []struct{ method, path, vendorPath string }{
		{"POST", "/authkit/token", "/v1/authkit"},
		{"GET", "/authkit/connectors", "/v1/available-connectors"},
	} {
		for _, body := range []string{`{}`, `[]`, `"x"`, `{"error":"Internal error","code":500}`, `{"rows":"x"}`, `null`} {
			t.Run(route.path+" "+body, func(t *testing.T) {
				var broken atomic.Bool
				broken.Store(true)
				wrap := func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if r.URL.Path != route.vendorPath || !broken.Load() {
							next.ServeHTTP(w, r)
							return
						}
						w.Header().Set("Content-Type", "application/json")
						_, _ = io.WriteString(w, body)
					})
				}
				g := startGatewayWith(t, vendorSetup{wrap: wrap}, "")
				expect(t, g.as("alice", route.method, route.path, nil), 502, "vendor_bad_response")
				broken.Store(false)
				res := g.as("alice", route.method, route.path, nil)
				expect(t, res, 200, "")
				if rows, ok := res.json(t)["rows"].([]any); !ok || len(rows) == 0 {
					t.Fatalf("after the vendor recovered: %s", res.body)
				}
			})
		}
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
			res := g.do(call{method: "POST", url: headerURL + "/authkit/token", header: tc.header})
			expect(t, res, tc.status, tc.code)
		})
	}
	// basic_auth in front: no credentials never reach authkit.
	res := g.do(call{method: "POST", url: appURL + "/authkit/token"})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("signed out: %d", res.StatusCode)
	}
	if n := g.pica.Count(sandbox.EndpointToken); n != 1 {
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
		"reset":           {sandbox.Fault{Reset: true}, 502, "vendor_bad_response"},
		"slow":            {sandbox.Fault{Delay: 3 * time.Second}, 504, "vendor_timeout"},
		"bad request":     {sandbox.Fault{Status: 400}, 502, "vendor_refused"},
	} {
		t.Run(name, func(t *testing.T) {
			pica.ClearFaults()
			pica.SetFault("authkit", tc.fault)
			start := time.Now()
			res := g.do(call{method: "POST", url: appURL + "/authkit/token", user: "alice",
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

func TestIdenticalTokenRequestsShareOneCall(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Latency: 300 * time.Millisecond})
	g := startGateway(t, pica, "")
	for _, res := range concurrently(10, func(int) response { return g.as("alice", "POST", "/authkit/token", nil) }) {
		expect(t, res, 200, "")
	}
	if n := pica.Count(sandbox.EndpointToken); n > 2 {
		t.Fatalf("10 concurrent tokens for one user made %d page calls", n)
	}
}

// TestTokenPageThatIsNotJSONIs502NeverRelayedNorKept: a vendor 200 whose
// rows array is not valid JSON ({"rows":[1,]}) fails the token with 502
// vendor_bad_response, whether it is the only page, one page of a merged
// token, or the page the widget asked for with page and limit; the bad
// text is never relayed, and once the vendor answers well the next token
// is whole (nothing bad was kept).
func TestTokenPageThatIsNotJSONIs502NeverRelayedNorKept(t *testing.T) {
	var mode atomic.Value
	mode.Store("")
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			page := r.URL.Query().Get("page")
			var bad string
			switch m := mode.Load().(string); {
			case r.URL.Path != "/v1/authkit" || m == "":
			case m == "single", m == "paged":
				bad = `{"rows":[1,]}`
			case m == "merged" && page == "2":
				bad = `{"rows":[1,],"page":2,"pages":3,"total":250,"requestId":2}`
			}
			if bad == "" {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, bad)
		})
	}
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250})
	g := startGatewayWith(t, vendorSetup{pica: pica, wrap: wrap}, "")
	for _, tc := range []struct {
		mode, path string
		rows       int
	}{
		{"single", "/authkit/token", 250},
		{"merged", "/authkit/token", 250},
		{"paged", "/authkit/token?page=1&limit=10", 10},
	} {
		mode.Store(tc.mode)
		res := g.as("alice", "POST", tc.path, nil)
		if res.StatusCode != http.StatusBadGateway || res.errorCode(t) != "vendor_bad_response" {
			t.Errorf("%s: %d %.200s, want 502 vendor_bad_response", tc.mode, res.StatusCode, res.body)
		}
		if bytes.Contains(res.body, []byte("[1,")) {
			t.Errorf("%s: the vendor's broken rows were relayed: %s", tc.mode, res.body)
		}
		mode.Store("")
		res = g.as("alice", "POST", tc.path, nil)
		expect(t, res, 200, "")
		if rows, _ := res.json(t)["rows"].([]any); len(rows) != tc.rows {
			t.Errorf("%s: the next token has %d rows, want %d", tc.mode, len(rows), tc.rows)
		}
	}
}

// TestSiteEncodeCompressesTheToken: authkit orders itself after encode, so
// a site's `encode gzip` compresses its answers: a large token (250
// connectors) comes gzip-compressed to a client that accepts gzip and
// decompresses to the same JSON as the plain answer; preflight still works.
func TestSiteEncodeCompressesTheToken(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250})
	g := startGateway(t, pica, "")
	config := g.config("")
	withEncode := strings.Replace(config, "http://localhost:9080 {\n\tlog\n", "http://localhost:9080 {\n\tlog\n\tencode gzip\n", 1)
	if withEncode == config {
		t.Fatal("the basic_auth site was not found in the test config")
	}
	g.loadConfig(withEncode)

	token := func(acceptEncoding string) (map[string]any, response) {
		t.Helper()
		res := g.as("alice", "POST", "/authkit/token", map[string]string{"Accept-Encoding": acceptEncoding, "Origin": "http://app.test"})
		expect(t, res, 200, "")
		body := res.body
		if res.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(res.body))
			if err != nil {
				t.Fatalf("not gzip: %v", err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("broken gzip: %v", err)
			}
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("the token is not JSON: %v", err)
		}
		delete(v, "requestId") // the vendor numbers each token
		return v, res
	}
	plain, plainRes := token("identity")
	if ce := plainRes.Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("Content-Encoding %q for a client that accepts none", ce)
	}
	if rows := plain["rows"].([]any); len(rows) != 250 || len(plainRes.body) < 32<<10 {
		t.Fatalf("the token has %d rows in %d bytes: not the large token the test needs", len(rows), len(plainRes.body))
	}
	zipped, zippedRes := token("gzip")
	if ce := zippedRes.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip: the site's encode did not compress the token", ce)
	}
	if len(zippedRes.body)*4 > len(plainRes.body) {
		t.Fatalf("compressed to %d of %d bytes", len(zippedRes.body), len(plainRes.body))
	}
	if !reflect.DeepEqual(plain, zipped) {
		t.Fatal("the compressed token decompresses to another JSON than the plain one")
	}
	if zippedRes.Header.Get("Access-Control-Allow-Origin") != "http://app.test" {
		t.Fatal("the compressed token lost its CORS headers")
	}

	res := g.do(call{method: "OPTIONS", url: appURL + "/authkit/token", header: map[string]string{
		"Origin": "http://app.test", "Access-Control-Request-Method": "POST", "Accept-Encoding": "gzip"}})
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "http://app.test" ||
		res.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("preflight under encode: %d %v", res.StatusCode, res.Header)
	}
}

// TestTokenRecoversWhenTheAccountShrinks: the remembered page count is a
// guess. When the account has fewer pages now and the vendor refuses the
// pages it no longer has, the token is still whole, and the next one asks
// page 1 first.
func TestTokenRecoversWhenTheAccountShrinks(t *testing.T) {
	var shrunk atomic.Bool
	var late atomic.Int64
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/authkit" || !shrunk.Load() {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Query().Get("page") != "1" {
				late.Add(1)
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"message":"Invalid page"}`)
				return
			}
			_, _ = io.WriteString(w, `{"rows":[{"id":1}],"total":1,"pages":1,"page":1,"requestId":9}`)
		})
	}
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 300})
	g := startGatewayWith(t, vendorSetup{pica: pica, wrap: wrap}, "")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "") // 3 pages remembered
	shrunk.Store(true)
	for i := range 2 {
		res := g.as("alice", "POST", "/authkit/token", nil)
		expect(t, res, 200, "")
		var token struct {
			Rows  []json.RawMessage
			Total int
		}
		if json.Unmarshal(res.body, &token) != nil || len(token.Rows) != 1 || token.Total != 1 {
			t.Fatalf("token %d after the account shrank: %s", i+1, res.body)
		}
	}
	if n := late.Load(); n == 0 || n > 2 {
		t.Fatalf("%d calls for pages the account no longer has; want those of the first guess only", n)
	}
}
