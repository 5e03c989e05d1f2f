package caddyauthkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

func TestDefaultsFollowTheProvider(t *testing.T) {
	for _, tc := range []struct {
		provider, api, origin string
	}{
		{"", "https://api.picaos.com", "https://authkit.picaos.com"},
		{"pica", "https://api.picaos.com", "https://authkit.picaos.com"},
		{"one", "https://api.withone.ai", "https://auth.withone.ai"},
	} {
		a := &AuthKit{Provider: tc.provider}
		if err := a.setDefaults(); err != nil {
			t.Fatal(err)
		}
		if a.API != tc.api || len(a.CORSOrigins) != 1 || a.CORSOrigins[0] != tc.origin {
			t.Fatalf("provider %q: api %s, origins %v", tc.provider, a.API, a.CORSOrigins)
		}
		if a.Prefix != DefaultPrefix || a.Identity != DefaultIdentity || a.IdentityType != DefaultIdentityType ||
			time.Duration(a.Timeout) != DefaultTimeout || time.Duration(a.OwnershipTTL) != DefaultOwnershipTTL ||
			time.Duration(a.TicketTTL) != DefaultTicketTTL || a.OwnershipCacheSize != DefaultOwnershipCacheSize ||
			a.MaxConcurrent != DefaultMaxConcurrent || a.MaxBodySize != DefaultMaxBodySize {
			t.Fatalf("provider %q: defaults %+v", tc.provider, a)
		}
	}
	if err := (&AuthKit{Provider: "picaos"}).setDefaults(); err == nil {
		t.Fatal("an unknown provider was accepted")
	}
}

func TestSetValuesAreKeptAndThePrefixNormalised(t *testing.T) {
	a := &AuthKit{Prefix: "api/kit/", API: "http://127.0.0.1:1", Timeout: caddy.Duration(time.Second),
		MaxConcurrent: 3, MaxBodySize: 10, OwnershipCacheSize: 7, CORSOrigins: []string{"*"}}
	if err := a.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if a.Prefix != "/api/kit" || a.API != "http://127.0.0.1:1" || a.Timeout != caddy.Duration(time.Second) ||
		a.MaxConcurrent != 3 || a.MaxBodySize != 10 || a.OwnershipCacheSize != 7 || a.CORSOrigins[0] != "*" {
		t.Fatalf("set values lost: %+v", a)
	}
}

// TestATicketKeyThatCannotBeReadFailsTheConfig: a ticket_key whose
// variable is unset fails provisioning, naming it, rather than falling
// back to the secret.
func TestATicketKeyThatCannotBeReadFailsTheConfig(t *testing.T) {
	err := provisionError(t, ":8080 {\n\tauthkit {\n\t\tsecret {env.AUTHKIT_TEST_SECRET}\n\t\tticket_key {env.AUTHKIT_TEST_UNSET_TICKET_KEY}\n\t}\n}\n")
	if err == nil || !strings.Contains(err.Error(), "ticket_key {env.AUTHKIT_TEST_UNSET_TICKET_KEY}") {
		t.Fatalf("provisions: %v", err)
	}
}

func TestResolveSecretNamesThePlaceholderNeverTheValue(t *testing.T) {
	t.Setenv("AUTHKIT_MODULE_TEST", "  sk_test_value \n")
	if s, err := resolveSecret("secret", "{env.AUTHKIT_MODULE_TEST}"); err != nil || s != "sk_test_value" {
		t.Fatalf("env secret: %q, %v", s, err)
	}
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("sk_from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := resolveSecret("secret", "{file."+file+"}"); err != nil || s != "sk_from_file" {
		t.Fatalf("file secret: %q, %v", s, err)
	}
	t.Setenv("AUTHKIT_MODULE_TEST", "sk_a\nsk_b")
	for _, placeholder := range []string{"", "{env.AUTHKIT_MODULE_TEST_UNSET}", "{env.AUTHKIT_MODULE_TEST}"} {
		_, err := resolveSecret("ticket_key", placeholder)
		if err == nil {
			t.Fatalf("%q accepted", placeholder)
		}
		if strings.Contains(err.Error(), "sk_a") {
			t.Fatalf("the error shows the secret: %v", err)
		}
		if !strings.Contains(err.Error(), "ticket_key "+placeholder) {
			t.Fatalf("the error does not name ticket_key %s: %v", placeholder, err)
		}
	}
	// Written in the config, the value is the secret: never quoted.
	for _, literal := range []string{"sk_live_1_written\nin", "sk_live_1_{written", "sk_live_1_written}"} {
		_, err := resolveSecret("secret", literal)
		if err == nil || strings.Contains(err.Error(), "written\n") || strings.Contains(err.Error(), "sk_live") ||
			!strings.Contains(err.Error(), "secret (written in the config)") {
			t.Fatalf("%q: %v", literal, err)
		}
	}
}

func TestSetOf(t *testing.T) {
	if setOf(nil) != nil {
		t.Fatal("an empty list must mean no allow-list")
	}
	s := setOf([]string{"gmail", "slack", "gmail"})
	if _, ok := s["slack"]; !ok || len(s) != 2 {
		t.Fatalf("set %v", s)
	}
}

// TestReloadKeepsServingWithTheNewConfig: a config change reaches the
// handler (here, the prefix) with no restart, and the old routes are gone.
func TestReloadKeepsServingWithTheNewConfig(t *testing.T) {
	g := startGateway(t, nil, "")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	g.load("prefix /kit")
	expect(t, g.as("alice", "POST", "/kit/token", nil), 200, "")
	if res := g.as("alice", "POST", "/authkit/token", nil); res.StatusCode != 200 || string(res.body) != "app" {
		t.Fatalf("the old prefix is still served by authkit: %d %s", res.StatusCode, res.body)
	}
}

// vendorFaults stands between the gateway and the sandbox and fails calls
// deterministically, by count: every 13th token page and every 11th vault
// list answer 500, every 7th passthrough call is the vendor's own 429, and
// every odd flags call answers 500. It counts what it injected.
type vendorFaults struct {
	calls, injected [4]atomic.Int64
}

const (
	faultToken = iota
	faultFlags
	faultVault
	faultPassthrough
)

func (f *vendorFaults) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, status := -1, http.StatusInternalServerError
		var fail func(n int64) bool
		switch {
		case r.URL.Path == "/v1/authkit":
			kind, fail = faultToken, func(n int64) bool { return n%13 == 0 }
		case r.URL.Path == "/v1/users/flags":
			kind, fail = faultFlags, func(n int64) bool { return n%2 == 1 }
		case r.Method == http.MethodGet && r.URL.Path == "/v1/vault/connections":
			kind, fail = faultVault, func(n int64) bool { return n%11 == 0 }
		case strings.HasPrefix(r.URL.Path, "/v1/passthrough/"):
			kind, status, fail = faultPassthrough, http.StatusTooManyRequests, func(n int64) bool { return n%7 == 0 }
		}
		if kind < 0 || !fail(f.calls[kind].Add(1)) {
			next.ServeHTTP(w, r)
			return
		}
		f.injected[kind].Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "2")
		}
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"type":"error","code":%d,"status":%d,"key":"err::injected","message":"injected fault"}`, status, status)
	})
}

// loadAnswer is one answer of TestCaddyAnswersEveryCallUnderFaultsAndAReload,
// checked on the test's goroutine.
type loadAnswer struct {
	member      int
	kind        string
	afterReload bool
	status      int
	header      http.Header
	body        []byte
	err         error
}

// TestCaddyAnswersEveryCallUnderFaultsAndAReload (issue 17.3): many
// identities at once, each minting tickets and redeeming them for
// three-page tokens, calling passthrough by key and keyless, listing and
// deleting its connections, with debug logs on, while the vendor fails
// token pages, vault lists, passthrough calls and the flags call, and the
// config is reloaded while calls flow (with a grace period, as in
// production). Every call gets an HTTP answer, one of those its route
// gives: 200 (204 for preflight), the envelope of the injected fault (502,
// 429 with Retry-After), 404 for a connection already deleted; never a
// transport error or a bare 5xx. The suite runs under -race.
func TestCaddyAnswersEveryCallUnderFaultsAndAReload(t *testing.T) {
	const (
		members = 32
		// answers before the reload, and answers to calls sent after it
		before, after = 300, 300
		origin        = "https://authkit.picaos.com"
	)
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250, WhiteLabel: true})
	type member struct {
		id           string
		gmail, slack sandbox.Connection
	}
	people := make([]member, members)
	for i := range people {
		people[i].id = fmt.Sprintf("member-%02d", i)
		people[i].gmail = pica.AddConnection(people[i].id, "user", "gmail")
		if i%3 == 0 { // deletes it in its first round
			people[i].slack = pica.AddConnection(people[i].id, "user", "slack")
		}
	}
	faults := new(vendorFaults)
	g := startGatewayWith(t, vendorSetup{pica: pica, wrap: faults.wrap}, "")
	// As in production, a config being replaced finishes the calls it took.
	graceful := strings.Replace(gatewayConfig, "grace_period 1ns", "grace_period 10s", 1)
	g.loadConfig(fmt.Sprintf(graceful, logFile, aliceHash, bobHash, g.picaURL, ""))
	// Each member is a browser of its own: its calls go in turn, over its
	// own keep-alive connections.
	clients := make([]*http.Client, members)
	for m := range clients {
		clients[m] = &http.Client{Timeout: 30 * time.Second, Transport: new(http.Transport)}
		t.Cleanup(clients[m].CloseIdleConnections)
	}

	var (
		reloaded atomic.Bool
		arrived  atomic.Int64 // answers the members got
		stop     = make(chan struct{})
		answers  = make(chan loadAnswer, 1<<16) // never full: workers never wait on the checker
		wg       sync.WaitGroup
	)
	send := func(m int, kind, method, url string, header map[string]string) loadAnswer {
		a := loadAnswer{member: m, kind: kind, afterReload: reloaded.Load()}
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			panic(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		// A reload closes idle keep-alive connections; a call sent on one at
		// that instant never reached Caddy, and is replayed (as browsers do).
		req.Header.Set("Idempotency-Key", kind)
		res, err := clients[m].Do(req)
		if err == nil {
			a.body, err = io.ReadAll(res.Body)
			res.Body.Close()
			a.status, a.header = res.StatusCode, res.Header
		}
		a.err = err
		arrived.Add(1)
		answers <- a
		return a
	}
	for m := range people {
		p := people[m]
		as := map[string]string{"X-Auth-User": p.id, "X-Auth-Type": "user"}
		with := func(k, v string) map[string]string {
			h := map[string]string{k: v}
			for name, value := range as {
				h[name] = value
			}
			return h
		}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				minted := send(m, "ticket", "POST", headerURL+"/authkit/ticket", as)
				send(m, "preflight", "OPTIONS", ticketURL+"/authkit/token", map[string]string{
					"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": ticketHeader})
				var ticket struct{ Ticket string }
				if json.Unmarshal(minted.body, &ticket) == nil && ticket.Ticket != "" { // else the checker says why
					send(m, "token", "POST", ticketURL+"/authkit/token", map[string]string{ticketHeader: ticket.Ticket, "Origin": origin})
				}
				send(m, "passthrough", "GET", headerURL+"/authkit/passthrough/users/me", with("X-Pica-Connection-Key", p.gmail.Key))
				send(m, "keyless", "GET", headerURL+"/authkit/passthrough/users/me", with("X-AuthKit-Connection", "gmail"))
				send(m, "connections", "GET", headerURL+"/authkit/connections", as)
				if p.slack.ID != "" {
					send(m, "delete", "DELETE", headerURL+"/authkit/connections/"+p.slack.ID, as)
				}
			}
		})
	}
	var stopOnce sync.Once
	halt := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(halt)
	start := time.Now()

	// The checker: every answer is one its route gives.
	type tally map[int]int
	seen := map[string]tally{}
	deleted := make([]bool, members)
	whiteLabel := map[bool]int{}
	var (
		failed   int
		failures []string // the first 20
	)
	fail := func(a loadAnswer, format string, args ...any) {
		failed++
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf("%s of %s (after reload %v): ", a.kind, people[a.member].id, a.afterReload)+
				fmt.Sprintf(format, args...)+fmt.Sprintf(" [%d %.200s]", a.status, a.body))
		}
	}
	check := func(a loadAnswer) {
		if a.err != nil {
			fail(a, "no HTTP answer: %v", a.err)
			return
		}
		if seen[a.kind] == nil {
			seen[a.kind] = tally{}
		}
		seen[a.kind][a.status]++
		code := ""
		if a.status >= 400 {
			var env struct{ Error struct{ Code string } }
			if json.Unmarshal(a.body, &env) != nil || env.Error.Code == "" {
				fail(a, "an error without the envelope")
				return
			}
			code = env.Error.Code
		}
		p := people[a.member]
		switch got := fmt.Sprint(a.status, " ", code); a.kind {
		case "ticket":
			if got != "200 " {
				fail(a, "want 200")
			}
		case "preflight":
			if got != "204 " || a.header.Get("Access-Control-Allow-Origin") != origin {
				fail(a, "want the preflight's 204 with CORS headers")
			}
		case "token":
			switch got {
			case "200 ":
				var token struct {
					Rows         []json.RawMessage
					IsWhiteLabel *bool
				}
				if json.Unmarshal(a.body, &token) != nil || len(token.Rows) != 250 || token.IsWhiteLabel == nil {
					fail(a, "a token without its 250 rows and isWhiteLabel")
					return
				}
				whiteLabel[*token.IsWhiteLabel]++
			case "502 vendor_unavailable":
			default:
				fail(a, "want 200 or the envelope of a failed page")
			}
		case "passthrough", "keyless":
			switch got {
			case "200 ", "502 vendor_unavailable":
			case "429 vendor_rate_limited":
				if a.header.Get("Retry-After") == "" {
					fail(a, "429 without Retry-After")
				}
			default:
				fail(a, "want 200 or the envelope of a fault")
			}
		case "connections":
			switch got {
			case "200 ":
				if listed := bytes.Contains(a.body, []byte(`"`+p.slack.ID+`"`)); p.slack.ID != "" && listed == deleted[a.member] {
					fail(a, "the list shows the slack connection: %v, deleted: %v", listed, deleted[a.member])
				}
				if !bytes.Contains(a.body, []byte(`"`+p.gmail.ID+`"`)) {
					fail(a, "the list lacks the member's gmail connection")
				}
			case "502 vendor_unavailable":
			default:
				fail(a, "want 200 or the envelope of a fault")
			}
		case "delete":
			switch {
			case got == "200 " && !deleted[a.member]:
				deleted[a.member] = true
			case got == "404 connection_not_found" && deleted[a.member]:
			default:
				fail(a, "want 200 once, then 404 connection_not_found (deleted: %v)", deleted[a.member])
			}
		}
	}

	guard := time.NewTimer(60 * time.Second) // a failure guard, not a wait
	defer guard.Stop()
	total, afterCount := 0, 0
	var (
		reloadAt, reloadTook time.Duration
		during               int64
	)
	for afterCount < after {
		select {
		case a := <-answers:
			check(a)
			total++
			if a.afterReload {
				afterCount++
			}
		case <-guard.C:
			halt()
			t.Fatalf("only %d answers (%d after the reload) in 60s", total, afterCount)
		}
		if total == before && !reloaded.Load() {
			// Under load, no pinning: the calls in flight finish on the old
			// config (grace period) and new ones go to the new.
			reloadStart, arrivedBefore := time.Now(), arrived.Load()
			reloadAt = reloadStart.Sub(start)
			g.tester.InitServer(fmt.Sprintf(graceful, logFile, aliceHash, bobHash, g.picaURL, "cors_origins https://reloaded.example"), "caddyfile")
			if t.Failed() {
				halt()
				t.FailNow()
			}
			reloaded.Store(true)
			reloadTook, during = time.Since(reloadStart), arrived.Load()-arrivedBefore
		}
	}
	halt()
	close(answers)
	for a := range answers {
		check(a)
		total++
	}
	elapsed := time.Since(start)
	t.Logf("%d answers in %v with %d members; the reload began after %d answers, at %v, took %v, %d answers came meanwhile, %d to calls sent after it; by route and status: %v; injected faults (token, flags, vault, passthrough): %d %d %d %d",
		total, elapsed.Round(time.Millisecond), members, before, reloadAt.Round(time.Millisecond), reloadTook.Round(time.Millisecond), during, afterCount, seen,
		faults.injected[faultToken].Load(), faults.injected[faultFlags].Load(), faults.injected[faultVault].Load(), faults.injected[faultPassthrough].Load())
	if failed > 0 {
		t.Fatalf("%d calls were not answered as their route answers:\n%s", failed, strings.Join(failures, "\n"))
	}

	// The faults did happen and were answered as such.
	if seen["token"][502] == 0 || seen["token"][502] > int(faults.injected[faultToken].Load()) {
		t.Errorf("%d tokens failed for %d failed pages", seen["token"][502], faults.injected[faultToken].Load())
	}
	if n := seen["passthrough"][429] + seen["keyless"][429]; n == 0 || n != int(faults.injected[faultPassthrough].Load()) {
		t.Errorf("%d passthrough calls answered 429 for %d injected", n, faults.injected[faultPassthrough].Load())
	}
	// A vault list's 500 is final (not retried), and no two callers share
	// one (each member calls in turn): each is one caller's 502.
	if n := seen["connections"][502] + seen["keyless"][502] + seen["passthrough"][502]; n == 0 || n != int(faults.injected[faultVault].Load()) {
		t.Errorf("%d calls answered 502 for %d failed vault lists", n, faults.injected[faultVault].Load())
	}
	if whiteLabel[false] == 0 || whiteLabel[true] == 0 {
		t.Errorf("isWhiteLabel %v: the failed flags call (false) and the good one (true) were not both seen", whiteLabel)
	}
	for m, p := range people {
		if p.slack.ID != "" && !deleted[m] {
			t.Errorf("%s's slack connection was never deleted", p.id)
		}
	}
	// The reloaded config serves.
	res := g.do(call{method: "OPTIONS", url: ticketURL + "/authkit/token", header: map[string]string{"Origin": "https://reloaded.example"}})
	if res.Header.Get("Access-Control-Allow-Origin") != "https://reloaded.example" {
		t.Fatal("the reloaded config does not apply")
	}
}
