package caddyauthkit

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestErrorLineCarriesTheRequestID: a failed request's error line carries
// Caddy's request id, to find its access log line.
func TestErrorLineCarriesTheRequestID(t *testing.T) {
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
	if id, _ := failures[0]["uuid"].(string); !uuidPattern.MatchString(id) {
		t.Fatalf("error line without Caddy's request id: %v", failures[0])
	}
}

// hostileText is what a hostile vendor writes in its own error messages: a
// connection key, and the secret upper-cased, cut short, and encoded.
var hostileText = map[string]string{
	"a connection key":         "hostile: connection test::slack::default::0123456789abcdef|bob failed",
	"a live connection key":    "hostile: see live::gmail::default::fedcba9876543210|carol",
	"the secret upper-cased":   "hostile: bad secret " + strings.ToUpper(testSecret),
	"its tail upper-cased":     "hostile: bad secret ..." + strings.ToUpper(testSecret[3:]),
	"the secret's first 10":    "hostile: bad secret " + testSecret[:10] + "...",
	"10 of the secret's":       "hostile: bad secret ..." + testSecret[20:30] + "...",
	"the secret in base64":     "hostile: bad secret " + base64.StdEncoding.EncodeToString([]byte(testSecret)),
	"the secret in URL base64": "hostile: secret=" + base64.RawURLEncoding.EncodeToString([]byte(testSecret)),
	"the secret in hex":        "hostile: secret " + hex.EncodeToString([]byte(testSecret)),
}

// leaks lists what of the secret or of a connection key text carries: any
// 8-character piece of the secret in any case, a key's shape, a run of the
// secret's encodings.
func leaks(text string) []string {
	var found []string
	lower := strings.ToLower(text)
	for i := 0; i+8 <= len(testSecret); i++ {
		if piece := strings.ToLower(testSecret[i : i+8]); strings.Contains(lower, piece) {
			found = append(found, "secret piece "+piece)
		}
	}
	for _, shape := range []string{"test::", "live::", "0123456789abcdef", "fedcba9876543210"} {
		if strings.Contains(lower, shape) {
			found = append(found, "key "+shape)
		}
	}
	for _, encoded := range []string{base64.StdEncoding.EncodeToString([]byte(testSecret)),
		base64.RawURLEncoding.EncodeToString([]byte(testSecret)), hex.EncodeToString([]byte(testSecret))} {
		for i := 0; i+12 <= len(encoded); i++ {
			if strings.Contains(text, encoded[i:i+12]) {
				found = append(found, "encoded secret "+encoded[i:i+12])
				break
			}
		}
	}
	return found
}

// TestVendorTextIsQuotedOnlyCleaned: a hostile vendor answers the
// gateway's calls with errors of its own (no x-pica-passthrough-* headers)
// whose message names a connection key or the secret in some disguise. On
// passthrough (the caller's call refused) and on the token, connections
// and connectors routes (the gateway's own call refused), the envelope's
// message is the gateway's own words and vendor_message holds none of it;
// a harmless vendor message is quoted as written.
func TestVendorTextIsQuotedOnlyCleaned(t *testing.T) {
	var (
		mu      sync.Mutex
		status  int
		message string
	)
	hostile := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			st, msg := status, message
			mu.Unlock()
			if st == 0 || r.URL.Path == "/v1/users/flags" {
				next.ServeHTTP(w, r)
				return
			}
			body, _ := json.Marshal(map[string]any{"type": "error", "code": st, "status": st, "key": "err::hostile", "message": msg})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(st)
			_, _ = w.Write(body)
		})
	}
	g := startGatewayWith(t, vendorSetup{wrap: hostile}, "")
	key := map[string]string{"X-Pica-Connection-Key": g.alice.Key}
	routes := []struct {
		method, path string
		own          bool // the gateway's own call: a vendor 4xx is the gateway's fault, 502
	}{
		{"GET", "/authkit/passthrough/users/me", false},
		{"POST", "/authkit/token", true},
		{"GET", "/authkit/connections", true},
		{"GET", "/authkit/connectors", true},
	}
	// Warm the ownership cache, so that passthrough reaches the vendor's
	// passthrough (not the vault) with the hostile answers.
	expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me", key), 200, "")
	g.pica.ResetRequests()

	n := 0
	for what, text := range hostileText {
		for _, st := range []int{400, 404, 401, 500} {
			mu.Lock()
			status, message = st, text
			mu.Unlock()
			for _, rt := range routes {
				n++
				path := rt.path
				if rt.path == "/authkit/connectors" {
					path += "?page=" + strconv.Itoa(n) // a fresh query: connectors are cached
				}
				res := g.as("alice", rt.method, path, key)
				if res.StatusCode < 400 {
					t.Fatalf("%s %s: the vendor's %d with %s answered %d %s", rt.method, rt.path, st, what, res.StatusCode, res.body)
				}
				if want := map[bool]int{true: http.StatusBadGateway, false: st}[rt.own || st == 401 || st >= 500]; res.StatusCode != want {
					t.Errorf("%s %s: the vendor's own %d answered %d, want %d", rt.method, rt.path, st, res.StatusCode, want)
				}
				env, ok := res.json(t)["error"].(map[string]any)
				if !ok {
					t.Fatalf("%s %s: no envelope in %s", rt.method, rt.path, res.body)
				}
				if msg, _ := env["message"].(string); msg == "" || strings.Contains(msg, "hostile") {
					t.Errorf("%s %s, vendor %d with %s: message %q is not the gateway's own words", rt.method, rt.path, st, what, msg)
				}
				if found := leaks(string(res.body) + fmt.Sprint(res.Header)); len(found) != 0 {
					t.Errorf("%s %s, vendor %d with %s: the answer carries %q: %s", rt.method, rt.path, st, what, found, res.body)
				}
			}
		}
	}
	if n := len(requestsTo(g.pica, sandbox.EndpointPassthrough)); n != 0 {
		t.Fatalf("the hostile vendor let %d passthrough calls through to the sandbox", n)
	}

	// Harmless vendor text is quoted, so the cleaning above was at work.
	mu.Lock()
	status, message = 400, "hostile: the field to is missing"
	mu.Unlock()
	for _, rt := range routes {
		path := rt.path
		if rt.path == "/authkit/connectors" {
			path += "?category=harmless"
		}
		res := g.as("alice", rt.method, path, key)
		env, _ := res.json(t)["error"].(map[string]any)
		if env == nil || env["vendor_message"] != "hostile: the field to is missing" {
			t.Errorf("%s %s: a harmless vendor message was not quoted: %s", rt.method, rt.path, res.body)
		}
	}
}

// TestRetryableIsTooManyRequestsAndServerErrors: a caller may retry a 429
// and any 5xx (500 included), never another refusal.
func TestRetryableIsTooManyRequestsAndServerErrors(t *testing.T) {
	for status, want := range map[int]bool{400: false, 401: false, 428: false, 429: true, 430: false, 499: false, 500: true, 502: true, 504: true} {
		if got := newError(status, "x", "x").Retryable; got != want {
			t.Errorf("%d: retryable %v, want %v", status, got, want)
		}
	}
}
