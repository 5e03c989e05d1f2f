package caddyauthkit

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

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
	time.Sleep(300 * time.Millisecond)
	g.tester.InitServer(fmt.Sprintf(gatewayConfig, logFile, aliceHash, bobHash, g.picaURL, "cors_origins https://new.example"), "caddyfile")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if failures.Load() != 0 || answered.Load() < 20 {
		t.Fatalf("%d of %d requests failed across the reload", failures.Load(), answered.Load())
	}
	res := g.do(request{method: "OPTIONS", url: appURL + "/authkit/token", header: map[string]string{"Origin": "https://new.example"}})
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
	return (&AuthKit{logHashKey: deriveKey(testSecret, purposeLogHash)}).hash(s)
}
