package caddyauthkit

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestVendorHooksCountAndLogEachCall: each attempt is a debug line named
// by Caddy's fields (uuid, status, duration), never with its query (it
// names identities and keys), and a latency sample by endpoint and outcome.
func TestVendorHooksCountAndLogEachCall(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	m, _ := newMetrics(nil)
	a := &AuthKit{logger: zap.New(core), metrics: m}
	hooks := a.vendorHooks()
	ctx := context.WithValue(context.Background(), requestIDKey{}, "req-7")
	req := httptest.NewRequest("GET", "http://vendor/v1/vault/connections?identity=alice&key=k", nil).WithContext(ctx)
	hooks.Call(req, "vault_list", 2)(200, nil)
	hooks.Call(req, "vault_list", 3)(0, errors.New("dial tcp 10.0.0.1:443: connect: connection refused"))
	lines := logs.FilterMessage("vendor call").All()
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	first, second := lines[0].ContextMap(), lines[1].ContextMap()
	if first["uuid"] != "req-7" || first["status"] != int64(200) || first["endpoint"] != "vault_list" || first["attempt"] != int64(2) ||
		first["path"] != "/v1/vault/connections" || first["duration"] == nil {
		t.Fatalf("line %v", first)
	}
	if second["error"] != "connection refused" {
		t.Fatalf("the failed call's line %v", second)
	}
	for _, l := range lines {
		for _, v := range l.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, "alice") {
				t.Fatalf("a line names the identity: %v", l.ContextMap())
			}
		}
	}
	for outcome, want := range map[string]uint64{"200": 1, "error": 1} {
		var got uint64
		if o, ok := m.observers.Load([2]string{"vault_list", outcome}); ok {
			got = sampleCount(o)
		}
		if got != want {
			t.Fatalf("%d samples with outcome %s, want %d", got, outcome, want)
		}
	}
}

// sampleCount is how many observations a histogram holds.
func sampleCount(o any) uint64 {
	var m dto.Metric
	if o.(prometheus.Metric).Write(&m) != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}
