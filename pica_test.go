package caddyauthkit

import (
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
