package caddyauthkit

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestWorkContextCarriesPlainValuesOnly: what workers get of a request is
// its id and its cancellation, never the Replacer or vars Caddy hangs on
// it (reading {http.request.uuid} writes to them: from a worker, that is a
// concurrent map write, a crash of the whole Caddy).
func TestWorkContextCarriesPlainValuesOnly(t *testing.T) {
	r := httptest.NewRequest("POST", "/authkit/token", nil)
	parent, cancel := context.WithCancel(r.Context())
	parent = context.WithValue(parent, caddy.ReplacerCtxKey, caddy.NewReplacer())
	parent = context.WithValue(parent, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(parent)

	ctx, done := workContext(r, "req-1")
	defer done()
	if ctx.Value(caddy.ReplacerCtxKey) != nil || ctx.Value(caddyhttp.VarsCtxKey) != nil {
		t.Fatal("the work context carries the request's Replacer or vars")
	}
	if requestIDOf(ctx) != "req-1" {
		t.Fatalf("request id %q", requestIDOf(ctx))
	}
	cancel()
	<-ctx.Done() // the request's end ends the work
	ctx, done = workContext(httptest.NewRequest("GET", "/", nil), "")
	done()
	<-ctx.Done() // and so does the handler's
}

func TestPositiveParam(t *testing.T) {
	for value, want := range map[string]string{"": "7", "1": "1", "010": "10", "100": "100"} {
		if got, err := positiveParam(value, "page", "7", 100); err != nil || got != want {
			t.Errorf("positiveParam(%q) = %q, %v; want %q", value, got, err, want)
		}
	}
	for _, value := range []string{"0", "-1", "101", "1.5", "x", "1e2", " 1"} {
		if _, err := positiveParam(value, "page", "7", 100); err == nil || !strings.Contains(err.Error(), "page must be a whole number from 1 to 100") {
			t.Errorf("positiveParam(%q): %v", value, err)
		}
	}
}
