package caddyauthkit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

func testPicaClient(t *testing.T, handler http.HandlerFunc) (*picaClient, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	m, _ := newMetrics(nil)
	return newPicaClient(base, pica, "sk_test_1_x", http.DefaultTransport, 10*time.Second, 8, zap.NewNop(), m), &calls
}

func TestLongRetryAfterGoesToTheCaller(t *testing.T) {
	p, calls := testPicaClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	start := time.Now()
	_, err := p.do(context.Background(), vendorCall{endpoint: "flags", method: "GET", path: "/v1/users/flags", idempotent: true})
	body := errorBody(err)
	if body.Status != 429 || body.retryAfter != 30 || calls.Load() != 1 || time.Since(start) > time.Second {
		t.Fatalf("status %d, Retry-After %d, %d calls, %v", body.Status, body.retryAfter, calls.Load(), time.Since(start))
	}
}

func TestShortFailuresAreRetried(t *testing.T) {
	p, calls := testPicaClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-pica-secret") != "sk_test_1_x" {
			t.Error("no secret on the call")
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, err := p.do(context.Background(), vendorCall{endpoint: "flags", method: "GET", path: "/v1/users/flags", idempotent: true})
	if body := errorBody(err); body.Status != 502 || calls.Load() != maxAttempts {
		t.Fatalf("status %d after %d calls, want 502 after %d", body.Status, calls.Load(), maxAttempts)
	}
	calls.Store(0)
	_, _ = p.do(context.Background(), vendorCall{endpoint: "vault_delete", method: "DELETE", path: "/v1/vault/connections/x"})
	if calls.Load() != 1 {
		t.Fatalf("a call that is not idempotent was sent %d times", calls.Load())
	}
}

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
	g.picaURL = "http://127.0.0.1:1"
	g.load("timeout 2s")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 502, "vendor_unreachable")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.alice.Key}), 502, "vendor_unreachable")
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
