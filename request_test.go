package caddyauthkit

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

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

// TestDiscardBodyTakesBodiesUpToTheLimit: on a route that reads no body, a
// body of the limit is taken, one byte more is 413 whether its length was
// declared or not, and a body that breaks is 400.
func TestDiscardBodyTakesBodiesUpToTheLimit(t *testing.T) {
	a := &AuthKit{MaxBodySize: 8}
	for _, tc := range []struct {
		name     string
		body     io.Reader
		declared bool
		code     string
	}{
		{"declared, the limit", strings.NewReader("12345678"), true, ""},
		{"declared, a byte more", strings.NewReader("123456789"), true, "body_too_large"},
		{"chunked, the limit", strings.NewReader("12345678"), false, ""},
		{"chunked, a byte more", strings.NewReader("123456789"), false, "body_too_large"},
		{"none", nil, false, ""},
		{"broken", iotest.ErrReader(errors.New("reset")), false, "body_invalid"},
	} {
		r := httptest.NewRequest("GET", "/authkit/connections", tc.body)
		if !tc.declared {
			r.ContentLength = -1
		}
		if tc.body == nil {
			r.Body = nil
		}
		err := a.discardBody(r)
		var e *apiError
		if tc.code == "" && err != nil || tc.code != "" && (!errors.As(err, &e) || e.Code != tc.code) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.code)
		}
	}
}
