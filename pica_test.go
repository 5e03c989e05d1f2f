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
