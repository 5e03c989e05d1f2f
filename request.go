package caddyauthkit

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// requestIDKey holds Caddy's id of the request, copied as a plain string
// into the context of the work a request starts.
type requestIDKey struct{}

// workContext is the context of the vendor calls a request makes, on its
// own goroutine or on workers (token pages, the flags call, a shared
// flight): the request's cancellation and its id, as plain values. It never
// carries the request's Replacer or vars, which Caddy writes to lazily
// (reading {http.request.uuid} stores it): only the request's own goroutine
// may touch them. The returned func releases it; call it when the request
// is done.
func workContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), requestIDKey{}, requestID(r)))
	stop := context.AfterFunc(r.Context(), cancel)
	return ctx, func() { stop(); cancel() }
}

// requestID is Caddy's id of the request ({http.request.uuid}). Read it on
// the request's own goroutine only.
func requestID(r *http.Request) string {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return ""
	}
	id, _ := repl.GetString("http.request.uuid")
	return id
}

// requestIDOf is the request id a work context carries.
func requestIDOf(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
