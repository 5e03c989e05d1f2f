package caddyauthkit

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http2"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// TestSecretIsNowhere drives every route, errors included, with debug logs
// on, then hunts for the secret in every answer, the logs, the admin API and
// the autosaved config.
func TestSecretIsNowhere(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 150})
	g := startGateway(t, pica, "")
	key := map[string]string{"X-Pica-Connection-Key": g.alice.Key, "Origin": "https://authkit.picaos.com"}
	var answers []response
	call := func(user, method, path string, header map[string]string) {
		answers = append(answers, g.as(user, method, path, header))
	}
	call("alice", "POST", "/authkit/token", nil)
	call("alice", "POST", "/authkit/token?page=2&limit=50", nil)
	call("alice", "GET", "/authkit/connections", nil)
	call("alice", "GET", "/authkit/connectors", nil)
	call("alice", "POST", "/authkit/passthrough/users/me", key)
	call("alice", "GET", "/authkit/passthrough/users/me?__status=401", key)
	call("alice", "GET", "/authkit/passthrough/users/me", map[string]string{"X-Pica-Connection-Key": g.bob.Key})
	call("alice", "GET", "/authkit/passthrough/%2e%2e/vault/connections", key)
	call("", "OPTIONS", "/authkit/token", map[string]string{"Origin": "https://authkit.picaos.com"})
	for _, endpoint := range []string{"authkit", "passthrough", "connectors", "vault_list"} {
		pica.SetFault(endpoint, sandbox.Fault{Status: 401})
	}
	call("bob", "POST", "/authkit/token", nil)
	call("bob", "GET", "/authkit/connections", nil)
	call("bob", "GET", "/authkit/connectors?limit=3", nil)
	call("alice", "GET", "/authkit/passthrough/users/me", key)
	call("bob", "GET", "/authkit/passthrough/users/me", map[string]string{"X-Pica-Connection-Key": g.bob.Key})

	for i, a := range answers {
		dump := fmt.Sprintf("%v %s", a.Header, a.body)
		if strings.Contains(dump, testSecret) {
			t.Fatalf("answer %d carries the secret: %s", i, dump)
		}
	}
	if n := pica.Count("passthrough"); n < 2 {
		t.Fatalf("only %d passthrough calls: the hunt did not exercise the proxy", n)
	}

	// The proxy's debug line of each upstream request must have been written,
	// else the hunt in the log would prove nothing.
	logs := readLog(t)
	mustContain(t, logs, "upstream roundtrip", "debug log")
	mustContain(t, logs, `"msg":"vendor call"`, "debug log")
	if strings.Contains(logs, testSecret) {
		t.Fatal("the secret is in the logs")
	}
	mustContain(t, logs, `"connection_key":"`+logHash(g.bob.Key)+`"`, "the refusal's log line")
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"logger":"http.handlers.authkit"`) &&
			(strings.Contains(line, g.alice.Key) || strings.Contains(line, `"alice"`)) {
			t.Fatalf("an authkit log line names an identity or a connection key: %s", line)
		}
	}

	res, err := http.Get("http://localhost:2999/config/")
	if err != nil {
		t.Fatal(err)
	}
	config, _ := io.ReadAll(res.Body)
	res.Body.Close()
	mustContain(t, string(config), "{env.AUTHKIT_TEST_SECRET}", "admin config")
	if strings.Contains(string(config), testSecret) {
		t.Fatal("the secret is in the admin API's config")
	}
	autosave, err := os.ReadFile(caddy.ConfigAutosavePath)
	if err != nil {
		t.Fatalf("no autosaved config to check: %v", err)
	}
	if strings.Contains(string(autosave), testSecret) {
		t.Fatal("the secret is in the autosaved config")
	}
}

func TestMetricsTellTheStory(t *testing.T) {
	g := startGateway(t, nil, "")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	key := map[string]string{"X-Pica-Connection-Key": g.alice.Key}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", key), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", key), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}), 403, "")

	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	metrics := string(body)
	for _, want := range []string{
		`caddy_authkit_requests_total{code="200",method="POST",route="token",server="srv0"}`,
		`caddy_authkit_requests_total{code="200",method="GET",route="passthrough",server="srv0"}`,
		`caddy_authkit_requests_total{code="403",method="GET",route="passthrough",server="srv0"}`,
		`caddy_authkit_vendor_request_duration_seconds_count{endpoint="token",outcome="200"}`,
		`caddy_authkit_ownership_cache_lookups_total{result="hit"}`,
		`caddy_authkit_ownership_cache_lookups_total{result="miss"}`,
		`caddy_authkit_denials_total{reason="connection_not_owned"}`,
	} {
		mustContain(t, metrics, want, "/metrics")
	}
	if strings.Contains(metrics, "alice") || strings.Contains(metrics, g.alice.Key) {
		t.Fatal("an identity or key is in a metric label")
	}
}

// TestReloadUnderLoad reloads with other origins while callers keep asking:
// no request fails and the new config wins at once.
func TestReloadUnderLoad(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := startGateway(t, pica, "")
	// As in production, the config being replaced finishes the calls it
	// took (the harness's 1ns grace period would cut them).
	graceful := strings.Replace(gatewayConfig, "grace_period 1ns", "grace_period 10s", 1)
	g.loadConfig(fmt.Sprintf(graceful, logFile, aliceHash, bobHash, g.picaURL, ""))

	var failures, answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", appURL+"/authkit/token", nil)
				req.SetBasicAuth("alice", "alice")
				// A reload closes idle keep-alive connections; a request sent on
				// one at that instant never reached Caddy. Browsers replay those,
				// and Go's client does for requests marked replayable.
				req.Header.Set("Idempotency-Key", "token")
				res, err := g.tester.Client.Do(req)
				if err != nil {
					// Caddy also drops a new connection the old servers
					// accepted as they stop, with no answer (the same load
					// on a site without authkit sees it); browsers retry
					// those once, and so does this client.
					t.Logf("retried: %v", err)
					res, err = g.tester.Client.Do(req)
				}
				if err != nil {
					failures.Add(1)
					t.Logf("failed: %v", err)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failures.Add(1)
					t.Logf("failed: status %d", res.StatusCode)
				}
				answered.Add(1)
			}
		}()
	}
	// Load flows before the reload and goes on after it.
	flowing := func(n int64) bool { return poll(t, 10*time.Second, func() bool { return answered.Load() >= n }) }
	if !flowing(10) {
		t.Fatal("no load before the reload")
	}
	g.tester.InitServer(fmt.Sprintf(gatewayConfig, logFile, aliceHash, bobHash, g.picaURL, "cors_origins https://new.example"), "caddyfile") // under load: no pinning
	if !flowing(answered.Load() + 10) {
		t.Fatal("no load after the reload")
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if failures.Load() != 0 || answered.Load() < 20 {
		t.Fatalf("%d of %d requests failed across the reload", failures.Load(), answered.Load())
	}
	res := g.do(call{method: "OPTIONS", url: appURL + "/authkit/token", header: map[string]string{"Origin": "https://new.example"}})
	if res.Header.Get("Access-Control-Allow-Origin") != "https://new.example" {
		t.Fatal("the reloaded origins do not apply")
	}
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")

	// The new instance's collectors are in the new registry, and count.
	scraped, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(scraped.Body)
	scraped.Body.Close()
	mustContain(t, string(scrape), `caddy_authkit_requests_total{code="200",method="POST",route="token",server="srv0"}`, "metrics after the reload")
}

// logHash is how the module's logs name s under the test secret.
func logHash(s string) string {
	return (&AuthKit{logHash: logHasher(testSecret)}).hash(s)
}

// rawExchange writes raw bytes to addr (then, with hangUp, closes its
// sending side) and reads every response the server gives until it closes
// the connection (or the safety deadline passes, which fails the test).
func rawExchange(t *testing.T, addr, raw string, hangUp bool) []*http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if hangUp {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(conn)
	var out []*http.Response
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server kept the connection open after %d answers: %v", len(out), err)
			}
			return out
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		out = append(out, res)
	}
}

// TestSmuggledRequestIsNeverServed: a request framed both by Content-Length
// (as a proxy in front may read it) and by chunking (as Go reads it) carries
// a second request with a spoofed identity header; Caddy closes the
// connection after the first answer, so the second is never served.
func TestSmuggledRequestIsNeverServed(t *testing.T) {
	g := startGateway(t, nil, "")
	smuggled := "GET /authkit/connections HTTP/1.1\r\nHost: localhost:9081\r\nX-Auth-User: bob\r\nX-Auth-Type: user\r\n\r\n"
	for _, first := range []string{"/authkit/token", "/app", "/authkit/passthrough/x"} {
		body := "0\r\n\r\n" + smuggled
		raw := "POST " + first + " HTTP/1.1\r\nHost: localhost:9081\r\nX-Auth-User: alice\r\nX-Auth-Type: user\r\n" +
			"X-Pica-Connection-Key: " + g.alice.Key + "\r\n" +
			"Content-Length: " + fmt.Sprint(len(body)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + body
		answers := rawExchange(t, "127.0.0.1:9081", raw, false)
		if len(answers) != 1 {
			t.Fatalf("%s: %d answers on one connection; the smuggled request was served", first, len(answers))
		}
		if !answers[0].Close {
			t.Errorf("%s: no Connection: close on a chunked request", first)
		}
	}
	for _, r := range requestsTo(g.pica, "vault_list") {
		if strings.Contains(r.RawQuery, "bob") {
			t.Fatalf("the smuggled request listed bob's connections: %s", r.RawQuery)
		}
	}
	// Without Transfer-Encoding, keep-alive is untouched.
	answers := rawExchange(t, "127.0.0.1:9081", "GET /app HTTP/1.1\r\nHost: localhost:9081\r\n\r\nGET /app HTTP/1.1\r\nHost: localhost:9081\r\nConnection: close\r\n\r\n", false)
	if len(answers) != 2 {
		t.Fatalf("%d answers to two pipelined plain requests", len(answers))
	}
}

// TestTricklingBodyIsCut: with the documented servers { timeouts { read_body } }
// global option, a client that sends one byte of its body and stalls loses
// the connection; nothing it sent is acted on.
func TestTricklingBodyIsCut(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := startGatewayBehind(t, pica, nil, "\tservers {\n\t\ttimeouts {\n\t\t\tread_body 1s\n\t\t}\n\t}\n", "")
	for _, body := range []string{"{", "\x89PNG"} {
		start := time.Now()
		raw := "POST /authkit/passthrough/x HTTP/1.1\r\nHost: localhost:9081\r\nX-Auth-User: alice\r\nX-Auth-Type: user\r\n" +
			"X-Pica-Connection-Key: " + g.alice.Key + "\r\nContent-Length: 1000\r\n\r\n" + body
		answers := rawExchange(t, "127.0.0.1:9081", raw, false)
		if elapsed := time.Since(start); elapsed > 8*time.Second {
			t.Fatalf("%q: the connection was held %v", body, elapsed)
		}
		if len(answers) != 1 || answers[0].StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: a trickled body was not answered 400 body_invalid once", body)
		}
	}
	for _, r := range requestsTo(pica, "passthrough") {
		if len(r.Body) == 1000 {
			t.Fatal("a trickled body reached the vendor whole")
		}
	}
	if n := len(requestsTo(pica, "passthrough")); n > 0 && strings.HasPrefix(string(requestsTo(pica, "passthrough")[0].Body), "{") {
		t.Fatal("a JSON body that could not be checked was sent")
	}
}

// TestCommaIdentityOwnsOnlyItsConnections: an LDAP-style identity with a
// comma can use its own connection and not another's.
func TestCommaIdentityOwnsOnlyItsConnections(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	carol := pica.AddConnection("uid=carol,ou=people", "user", "gmail")
	g := startGatewayBehind(t, pica, nil, "", "")
	as := func(key string) response {
		return g.do(call{method: "GET", url: headerURL + "/authkit/passthrough/users/me", header: map[string]string{
			"X-Auth-User": "uid=carol,ou=people", "X-Auth-Type": "user", "X-Pica-Connection-Key": key}})
	}
	expect(t, as(carol.Key), 200, "")
	expect(t, as(g.bob.Key), 403, "connection_not_owned")
	expect(t, as(g.alice.Key), 403, "connection_not_owned")
	// A key that merely ends like carol's is not hers.
	expect(t, as(strings.Replace(carol.Key, "gmail", "slack", 1)), 403, "")
	if n := len(requestsTo(pica, "passthrough")); n != 1 {
		t.Fatalf("%d passthrough calls, want carol's one", n)
	}
}

// TestWhatIsCheckedIsWhatIsSent: however the client spells, repeats, folds
// or hides the connection key and action id, the vendor gets exactly one
// key header, the checked value, under the provider's name, and no secret
// but the gateway's; and only access log lines may show the key.
func TestWhatIsCheckedIsWhatIsSent(t *testing.T) {
	g := startGateway(t, nil, "")
	mine, foreign := g.alice.Key, g.bob.Key
	auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice")) + "\r\n"
	send := func(headers string) int {
		raw := "GET /authkit/passthrough/users/me HTTP/1.1\r\nHost: localhost:9080\r\nConnection: close\r\n" + auth + headers + "\r\n"
		answers := rawExchange(t, "127.0.0.1:9080", raw, false)
		if len(answers) != 1 {
			t.Fatalf("%q: %d answers", headers, len(answers))
		}
		return answers[0].StatusCode
	}
	refused := []string{
		"X-Pica-Connection-Key: " + mine + "\r\nX-Pica-Connection-Key: " + foreign + "\r\n",
		"x-pica-connection-key: " + mine + "\r\nX-PICA-CONNECTION-KEY: " + foreign + "\r\n",
		"X-Pica-Connection-Key: " + mine + "\r\nX-One-Connection-Key: " + foreign + "\r\n",
		"X-Pica-Connection-Key: " + mine + "\r\n " + foreign + "\r\n", // obs-fold
		"X-Pica-Connection-Key: " + mine + "," + foreign + "\r\n",
		"X-Pica-Connection-Key: " + foreign + "\r\n",
		"X-Pica-Connection-Key: " + mine + "\r\nX-Pica-Action-Id: a\r\nX-Pica-Action-Id: b\r\n",
		"X-Pica-Connection-Key: " + mine + "\r\nConnection: X-Pica-Action-Id\r\n",
		"X-Pica-Connection-Key: " + mine + "\r\nConnection: keep-alive, x_pica_connection_key\r\n",
		"X-Pica-Connection-Key: " + mine + "\r\nConnection: X-One-Connection-Key\r\n",
		"X-Pica-Connection-Key: " + mine + "\r\nX-Pica-Connection-Key: \r\n",
	}
	for _, headers := range refused {
		if status := send(headers); status < 400 || status >= 500 {
			t.Errorf("%q: %d, want refused", headers, status)
		}
	}
	if n := len(requestsTo(g.pica, "passthrough")); n != 0 {
		t.Fatalf("%d refused calls reached the vendor", n)
	}
	passed := []string{
		"X-Pica-Connection-Key: " + mine + "\r\nX-Pica-Connection-Key: " + mine + "\r\n",
		"X-Pica-Connection-Key: \t " + mine + " \t\r\n",
		"x_pica_connection_key: " + mine + "\r\nX-One-Connection-Key: " + mine + "\r\n",
		"X-One-Connection-Key: " + mine + "\r\nX-One-Secret: sk_test_1_spoofed\r\nx_pica_secret: sk_test_1_spoofed\r\nX-Pica-Action-Id: conn_mod_def::act\r\n",
	}
	for _, headers := range passed {
		if status := send(headers); status != 200 {
			t.Errorf("%q: %d, want 200", headers, status)
		}
	}
	// Caddy drops header names with underscores before any handler runs
	// (unless a server lists them in expected_underscore_headers, when the
	// gateway refuses them as ambiguous): they never reach the vendor.
	for _, headers := range []string{
		"X-Pica-Connection-Key: " + mine + "\r\nx_pica_connection_key: " + foreign + "\r\n",
		"x-one-connection-key: " + mine + "\r\nx_one_connection_key: " + foreign + "\r\n",
		"X-Pica-Connection-Key: " + mine + "\r\nX-Pica-Action-Id: conn_mod_def::act\r\nx_one_action_id: b\r\n",
	} {
		if status := send(headers); status != 200 && status != 400 {
			t.Errorf("%q: %d, want 200 without it or 400", headers, status)
		} else if status == 200 {
			passed = append(passed, headers)
		}
	}
	reqs := requestsTo(g.pica, "passthrough")
	if len(reqs) != len(passed) {
		t.Fatalf("%d calls reached the vendor, want %d", len(reqs), len(passed))
	}
	for _, r := range reqs {
		var keys, secrets []string
		for name, values := range r.Header {
			n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			if strings.Contains(n, "connection-key") {
				if name != "X-Pica-Connection-Key" {
					t.Errorf("the key went under %q", name)
				}
				keys = append(keys, values...)
			}
			if strings.Contains(n, "secret") {
				secrets = append(secrets, values...)
			}
			if strings.HasPrefix(n, "x-one-") || strings.Contains(name, "_") {
				t.Errorf("%s reached the Pica vendor", name)
			}
			if strings.Contains(n, "action-id") && (name != "X-Pica-Action-Id" || len(values) != 1 || values[0] != "conn_mod_def::act") {
				t.Errorf("the vendor got action id %s: %q", name, values)
			}
		}
		if len(keys) != 1 || keys[0] != mine {
			t.Errorf("the vendor got key headers %q, want exactly the checked one", keys)
		}
		if len(secrets) != 1 || secrets[0] != testSecret {
			t.Errorf("the vendor got secret headers %d times", len(secrets))
		}
	}
	for _, line := range strings.Split(readLog(t), "\n") {
		if !strings.Contains(line, `"http.log.access`) && (strings.Contains(line, mine) || strings.Contains(line, foreign)) {
			t.Errorf("a connection key in a log line: %.300s", line)
		}
	}
}

// TestTwoHundredThatIsNotAnAnswerIs502: a vendor 2xx whose body is not what
// the route needs is vendor_bad_response, on every route that reads one,
// and is never cached: the next call, answered well, succeeds.
func TestTwoHundredThatIsNotAnAnswerIs502(t *testing.T) {
	var bad atomic.Value // the body the hostile vendor answers with; "" for the sandbox
	bad.Store("")
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	front := func(w http.ResponseWriter, r *http.Request) bool {
		body := bad.Load().(string)
		if body == "" || r.URL.Path == "/v1/users/flags" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		if body == "truncated" {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, `{"rows":[{"id":1`)
			return true
		}
		_, _ = io.WriteString(w, body)
		return true
	}
	g := startGatewayBehind(t, pica, front, "", "")
	routes := []struct{ method, path string }{
		{"POST", "/authkit/token"},
		{"POST", "/authkit/token?page=1&limit=10"},
		{"GET", "/authkit/connectors"},
		{"GET", "/authkit/connections"},
	}
	for i, body := range []string{
		`{"error":"boom","code":500}`, `{}`, `[]`, `"a string"`, `null`, `{"rows":null}`, `{"rows":{}}`,
		`{"rows":"x","pages":1}`, `{"rows":[1,2]`, "truncated", `<html>oops</html>`,
	} {
		// Connectors are cached by query: a fresh one makes the call.
		routes[2].path = "/authkit/connectors?limit=" + strconv.Itoa(10+i)
		for _, rt := range routes {
			bad.Store(body)
			res := g.as("alice", rt.method, rt.path, nil)
			if res.StatusCode != http.StatusBadGateway || res.errorCode(t) != "vendor_bad_response" {
				t.Errorf("%s %s with %q: %d %s, want 502 vendor_bad_response", rt.method, rt.path, body, res.StatusCode, res.body)
			}
			bad.Store("")
			expect(t, g.as("alice", rt.method, rt.path, nil), 200, "")
		}
	}
}

// TestTokenFanOutIsBoundedAndStopsWithTheCaller: a vendor claiming 100,000
// pages gets one call and a 502; a token whose pages hang stops calling the
// vendor once its caller leaves; the next caller is served.
func TestTokenFanOutIsBoundedAndStopsWithTheCaller(t *testing.T) {
	var (
		mode     atomic.Int32 // 0 sandbox, 1 huge page count, 2 100 pages that hang after page 1
		calls    atomic.Int32
		inFlight atomic.Int32
		changed  = make(chan struct{}, 1024)
		stop     = make(chan struct{})
	)
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	front := func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/authkit" || mode.Load() == 0 {
			return false
		}
		calls.Add(1)
		page := r.URL.Query().Get("page")
		w.Header().Set("Content-Type", "application/json")
		if mode.Load() == 1 {
			_, _ = io.WriteString(w, `{"rows":[],"page":1,"pages":100000,"total":0,"requestId":1}`)
			return true
		}
		if page == "1" || page == "" {
			_, _ = io.WriteString(w, `{"rows":[],"page":1,"pages":100,"total":0,"requestId":1}`)
			return true
		}
		// Read the body: only then does Go's server notice a closed connection.
		_, _ = io.Copy(io.Discard, r.Body)
		inFlight.Add(1)
		changed <- struct{}{}
		select { // hangs until the gateway gives up on it
		case <-r.Context().Done():
		case <-stop:
		}
		inFlight.Add(-1)
		changed <- struct{}{}
		return true
	}
	g := startGatewayBehind(t, pica, front, "", "")
	t.Cleanup(func() { close(stop) })

	mode.Store(1)
	res := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, res, http.StatusBadGateway, "")
	if n := calls.Load(); n > 1 {
		t.Fatalf("%d vendor calls for a 100,000-page token", n)
	}

	mode.Store(2)
	calls.Store(0)
	// The caller sends its request and hangs up, as a closed tab does.
	conn, err := net.Dial("tcp", "127.0.0.1:9080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /authkit/token HTTP/1.1\r\nHost: localhost:9080\r\nContent-Length: 0\r\n"+
		"Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("alice:alice"))+"\r\n\r\n")
	deadline := time.After(10 * time.Second)
	wait := func(until func() bool, what string) {
		for !until() {
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("waiting for %s: %d in flight, %d calls", what, inFlight.Load(), calls.Load())
			}
		}
	}
	wait(func() bool { return inFlight.Load() >= pageWorkers }, "the page workers to be busy")
	conn.Close()
	wait(func() bool { return inFlight.Load() == 0 }, "the hanging pages to be given up")
	if n := calls.Load(); n > 1+pageWorkers {
		t.Fatalf("%d vendor calls after the caller left; at most %d were in flight", n, 1+pageWorkers)
	}

	mode.Store(0)
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	if n := calls.Load(); n > 1+pageWorkers {
		t.Fatalf("the abandoned token kept calling: %d calls", n)
	}
}

// TestHTTP2RepeatedHeadersAreRefused: over HTTP/2 (h2c) a header field may
// come twice in one HEADERS frame; the gateway refuses differing key and
// action values there too, and the vendor gets nothing.
func TestHTTP2RepeatedHeadersAreRefused(t *testing.T) {
	g := startGatewayBehind(t, sandbox.New(sandbox.Options{Secret: testSecret}), nil, "\tservers {\n\t\tprotocols h1 h2c\n\t}\n", "")
	h2c := &http.Client{Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, network, "127.0.0.1:9080")
		},
	}}
	send := func(header http.Header) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", appURL+"/authkit/passthrough/users/me", nil)
		req.Header = header
		req.SetBasicAuth("alice", "alice")
		res, err := h2c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.ProtoMajor != 2 {
			t.Fatalf("answered over HTTP/%d", res.ProtoMajor)
		}
		return res
	}
	for _, header := range []http.Header{
		{"X-Pica-Connection-Key": {g.alice.Key, g.bob.Key}},
		{"X-Pica-Connection-Key": {g.alice.Key}, "X-One-Connection-Key": {g.bob.Key}},
		{"X-Pica-Connection-Key": {g.alice.Key}, "X-Pica-Action-Id": {"conn_mod_def::a", "conn_mod_def::b"}},
	} {
		if res := send(header); res.StatusCode != http.StatusBadRequest {
			t.Errorf("%v: %d, want 400", header, res.StatusCode)
		}
	}
	if n := g.pica.Count(sandbox.EndpointPassthrough); n != 0 {
		t.Fatalf("%d passthrough calls reached the vendor", n)
	}
	// The same call with one key goes through, once, with that key.
	if res := send(http.Header{"X-Pica-Connection-Key": {g.alice.Key}}); res.StatusCode != http.StatusOK {
		t.Fatalf("a clean HTTP/2 call: %d", res.StatusCode)
	}
	sent := requestsTo(g.pica, sandbox.EndpointPassthrough)
	if len(sent) != 1 || len(sent[0].Header.Values("X-Pica-Connection-Key")) != 1 || sent[0].Header.Get("X-Pica-Connection-Key") != g.alice.Key {
		t.Fatalf("the vendor got %v", sent)
	}
}

// TestPassthroughForwardsNothingOfTheAppOrItsAuthLayer: behind forward_auth
// copying the identity, its type and more about the user, a passthrough
// call reaches the third party with its own headers only: nothing the auth
// layer set (not even what it copies besides the identity), no method
// override (the third party would run another call than the one checked),
// no anti-forgery token, no Origin or Referer of the app's page.
func TestPassthroughForwardsNothingOfTheAppOrItsAuthLayer(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	alice := pica.AddConnection("alice", "team", "notion")
	api := httptest.NewServer(pica)
	defer api.Close()
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Remote-User", "alice")
		w.Header().Set("Remote-Kind", "team")
		w.Header().Set("Remote-Email", "alice@example.com")
		w.Header().Set("Remote-Groups", "admins")
	}))
	defer auth.Close()
	g := startSite(t, fmt.Sprintf(`	forward_auth %s {
		uri /verify
		copy_headers Remote-User Remote-Kind Remote-Email Remote-Groups
	}
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
		identity {http.request.header.Remote-User}
		identity_type {http.request.header.Remote-Kind}
	}
`, strings.TrimPrefix(auth.URL, "http://"), api.URL))
	res := g.do(call{method: "POST", url: appURL + "/authkit/passthrough/v1/pages", body: []byte(`{"a":1}`), header: map[string]string{
		"X-Pica-Connection-Key":  alice.Key,
		"Content-Type":           "application/json",
		"Notion-Version":         "2022-06-28",
		"X-HTTP-Method-Override": "DELETE",
		"X-Method-Override":      "DELETE",
		"X-HTTP-Method":          "DELETE",
		"X-Csrf-Token":           "app-csrf",
		"Origin":                 "https://app.example.com",
		"Referer":                "https://app.example.com/private/settings",
		"Remote-Email":           "spoofed@example.com",
	}})
	expect(t, res, 200, "")
	e := res.echo(t)
	if e.Method != "POST" || e.Headers.Get("Notion-Version") != "2022-06-28" || e.Headers.Get("Content-Type") != "application/json" {
		t.Fatalf("the call's own headers did not arrive: %s %v", e.Method, e.Headers)
	}
	for _, name := range []string{"Remote-User", "Remote-Kind", "Remote-Email", "Remote-Groups", "X-Http-Method-Override",
		"X-Method-Override", "X-Http-Method", "X-Csrf-Token", "Origin", "Referer"} {
		if v := e.Headers.Get(name); v != "" {
			t.Errorf("%s reached the third party: %q", name, v)
		}
	}
	if strings.Contains(string(res.body), "alice@example.com") || strings.Contains(string(res.body), "admins") {
		t.Fatalf("what the auth layer knows of the user reached the third party: %s", res.body)
	}
}

// TestPassthroughAnswersAreTheCallersAlone: a passthrough answer is never
// kept by a shared cache nor sniffed as another type; a connectionKey in
// the query must be the checked one, as in the body.
func TestPassthroughAnswersAreTheCallersAlone(t *testing.T) {
	g := startGateway(t, nil, "")
	key := map[string]string{"X-Pica-Connection-Key": g.alice.Key}
	res := g.as("alice", "GET", "/authkit/passthrough/users/me?connectionKey="+url.QueryEscape(g.alice.Key), key)
	expect(t, res, 200, "")
	if res.Header.Get("Cache-Control") != "private, no-store" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("passthrough answer headers %v", res.Header)
	}
	g.pica.ResetRequests()
	for _, query := range []string{"connectionKey=" + url.QueryEscape(g.bob.Key), "input%5BconnectionKey%5D=" + url.QueryEscape(g.bob.Key)} {
		expect(t, g.as("alice", "GET", "/authkit/passthrough/users/me?"+query, key), 403, "connection_not_owned")
	}
	if n := len(requestsTo(g.pica, "passthrough")); n != 0 {
		t.Fatalf("%d calls naming another key in the query reached the vendor", n)
	}
}

// TestTimeoutBoundsPassthroughWithAGivenTransport: a proxy block that sets
// only a dial timeout keeps `timeout` as the wait for the vendor's answer.
func TestTimeoutBoundsPassthroughWithAGivenTransport(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := startGateway(t, pica, "timeout 300ms\n\t\tproxy {\n\t\t\ttransport http {\n\t\t\t\tdial_timeout 2s\n\t\t\t}\n\t\t}")
	pica.SetFault("passthrough", sandbox.Fault{Delay: time.Minute})
	expect(t, g.as("alice", "GET", "/authkit/passthrough/slow", map[string]string{"X-Pica-Connection-Key": g.alice.Key}), 504, "vendor_timeout")
}
