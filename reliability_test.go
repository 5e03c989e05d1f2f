package caddyauthkit

import (
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// TestLoadAndFaultsLeakNothing sends 200 concurrent callers across token,
// connections and passthrough (bounded in count), then a burst that Pica
// answers too slowly. Nothing fails that was not injected, and a second
// round leaves goroutines and heap where the first left them (connection
// pools are warm after the first; growth after that would be a leak).
func TestLoadAndFaultsLeakNothing(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Latency: 5 * time.Millisecond})
	// A budget generous enough for 200 callers under -race on a busy
	// machine; the slow burst below outlasts it by far.
	g := startGateway(t, pica, "timeout 5s")
	g.tester.Client.Timeout = 30 * time.Second

	var goroutines int
	var heap uint64
	for round := 1; round <= 2; round++ {
		loadRound(t, g, pica)
		g.tester.Client.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
		if round == 1 {
			// The baseline: the count once it stops changing.
			last := -1
			poll(t, 5*time.Second, func() bool {
				n := runtime.NumGoroutine()
				stable := n == last
				last = n
				return stable
			})
			goroutines, heap = last, liveHeap()
			t.Logf("round 1: %d goroutines, %d KiB heap", goroutines, heap>>10)
			continue
		}
		// The connections of round 2 wind down as those of round 1 did;
		// a count that never comes back is a leak.
		if !poll(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines+25 }) {
			buf := make([]byte, 1<<20)
			t.Logf("%s", buf[:runtime.Stack(buf, true)])
			t.Fatalf("goroutines grew from %d to %d", goroutines, runtime.NumGoroutine())
		}
		if h := liveHeap(); h > heap+32<<20 {
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

	pica.SetFault("*", sandbox.Fault{Delay: time.Minute}) // held until the gateway gives up
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
