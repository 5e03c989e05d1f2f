package caddyauthkit

import (
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

func TestSlowPassthroughTimesOutOnce(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := startGateway(t, pica, "timeout 300ms")
	pica.SetFault("passthrough", sandbox.Fault{Delay: 2 * time.Second})
	start := time.Now()
	expect(t, g.as("alice", "GET", "/authkit/passthrough/slow", map[string]string{"X-Pica-Connection-Key": g.alice.Key}), 504, "vendor_timeout")
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Fatalf("answered after %v", elapsed)
	}
	if n := pica.Count("passthrough"); n != 1 {
		t.Fatalf("a call that reached Pica was sent %d times", n)
	}
}

func TestPicaDownIs502(t *testing.T) {
	g := startGateway(t, nil, "")
	// Point a second config at a port nobody listens on.
	config := fmt.Sprintf(gatewayConfig, logFile, aliceHash, bobHash, "http://127.0.0.1:1", "timeout 2s")
	g.tester.InitServer(config, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 502, "vendor_unreachable")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.alice.Key}), 502, "vendor_unreachable")
}

func TestIdentityHeaderOnlyFromTrustedProxies(t *testing.T) {
	g := startGateway(t, nil, "")
	for _, tc := range []struct {
		trusted string
		status  int
	}{{"10.0.0.0/8", 401}, {"127.0.0.1/32", 200}} {
		g.tester.InitServer(fmt.Sprintf(`{
	admin localhost:2999
	skip_install_trust
	http_port 9080
	https_port 9443
	grace_period 1ns
	servers {
		trusted_proxies static %s
	}
}
http://localhost:9080 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
		identity {http.request.header.X-Forwarded-User}
		identity_trusted_proxies_only
	}
}`, tc.trusted, g.picaURL), "caddyfile")
		if t.Failed() {
			t.FailNow()
		}
		res := g.do(request{method: "POST", url: appURL + "/authkit/token", header: map[string]string{"X-Forwarded-User": "alice"}})
		expect(t, res, tc.status, "")
	}
}

func TestOverloadIs503NotAPileUp(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Latency: 300 * time.Millisecond})
	g := startGateway(t, pica, "max_concurrent 1")
	overloaded := 0
	for _, res := range concurrently(6, func(int) response { return g.as("alice", "GET", "/authkit/connections", nil) }) {
		if res.StatusCode == 503 {
			overloaded++
			if res.errorCode(t) != "overloaded" || res.Header.Get("Retry-After") == "" {
				t.Fatalf("503 without its code or Retry-After: %v %s", res.Header, res.body)
			}
		} else if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if overloaded == 0 || pica.Count("vault_list") > 6-overloaded {
		t.Fatalf("%d overloaded answers, %d vault calls", overloaded, pica.Count("vault_list"))
	}
}

func TestIdenticalTokenRequestsShareOneCall(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Latency: 300 * time.Millisecond})
	g := startGateway(t, pica, "")
	for _, res := range concurrently(10, func(int) response { return g.as("alice", "POST", "/authkit/token", nil) }) {
		expect(t, res, 200, "")
	}
	if n := pica.Count("authkit"); n > 2 {
		t.Fatalf("10 concurrent tokens for one user made %d page calls", n)
	}
}

// TestLoadAndFaultsLeakNothing sends 200 concurrent callers across token,
// connections and passthrough (bounded in count), then a burst that Pica
// answers too slowly. Nothing fails that was not injected, and a second
// round leaves goroutines and heap where the first left them (connection
// pools are warm after the first; growth after that would be a leak).
func TestLoadAndFaultsLeakNothing(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Latency: 5 * time.Millisecond})
	g := startGateway(t, pica, "timeout 500ms")
	g.tester.Client.Timeout = 30 * time.Second

	var goroutines int
	var heap uint64
	for round := 1; round <= 2; round++ {
		loadRound(t, g, pica)
		n, h := settle(g)
		t.Logf("round %d: %d goroutines, %d KiB heap", round, n, h>>10)
		if round == 1 {
			goroutines, heap = n, h
			continue
		}
		if n > goroutines+25 {
			buf := make([]byte, 1<<20)
			t.Logf("%s", buf[:runtime.Stack(buf, true)])
			t.Fatalf("goroutines grew from %d to %d", goroutines, n)
		}
		if h > heap+32<<20 {
			t.Fatalf("heap grew from %d to %d bytes", heap, h)
		}
	}
}

func loadRound(t *testing.T, g *gateway, pica *sandbox.Server) {
	const callers, perCaller = 200, 6
	var failures atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			user, key := "alice", g.alice.Key
			if c%2 == 1 {
				user, key = "bob", g.bob.Key
			}
			for i := 0; i < perCaller; i++ {
				var res response
				switch i % 3 {
				case 0:
					res = g.as(user, "POST", "/authkit/token", nil)
				case 1:
					res = g.as(user, "GET", "/authkit/connections", nil)
				default:
					res = g.as(user, "POST", "/authkit/passthrough/items", map[string]string{"X-Pica-Connection-Key": key})
				}
				if res.StatusCode != 200 {
					failures.Add(1)
					t.Logf("%s: %d %s", user, res.StatusCode, res.body)
				}
			}
		}(c)
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed under load", failures.Load(), callers*perCaller)
	}

	pica.SetFault("*", sandbox.Fault{Delay: 3 * time.Second})
	defer pica.ClearFaults()
	for _, res := range concurrently(50, func(c int) response {
		return g.as([]string{"alice", "bob"}[c%2], "GET", "/authkit/connections", nil)
	}) {
		if res.StatusCode != 504 {
			failures.Add(1)
		}
	}
	if failures.Load() != 0 {
		t.Fatalf("%d slow calls were not answered 504", failures.Load())
	}
}

// settle closes idle connections, waits for the process to calm down and
// returns its goroutine count and live heap.
func settle(g *gateway) (int, uint64) {
	g.tester.Client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	var n int
	for i := 0; i < 40; i++ {
		time.Sleep(100 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			break
		} else {
			n = m
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return n, ms.HeapAlloc
}
