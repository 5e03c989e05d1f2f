package caddyauthkit

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.opentelemetry.io/otel/trace"
)

// request is what a route's handler gets of a request.
type request struct {
	r     *http.Request
	route *route
	// arg is the connection id of connections/{id}, or the passthrough path.
	arg string
	// caller is the identity the request acts for.
	caller identity
	// ctx is the work context: see workContext.
	ctx context.Context
	// identified: the caller's identity was asked for; from there on a
	// denial is audited.
	identified bool
	// Facts for the audit line, set by the route as they become known.
	platform, connectionID, upstreamPath string
	start                                time.Time

	reqID string
}

// requestID is Caddy's id of the request ({http.request.uuid}), read once,
// on the request's own goroutine.
func (rq *request) requestID() string {
	if rq.reqID == "" {
		repl, _ := rq.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if repl != nil {
			rq.reqID, _ = repl.GetString("http.request.uuid")
		}
	}
	return rq.reqID
}

// requestIDKey holds Caddy's id of the request, copied as a plain string
// into the work context.
type requestIDKey struct{}

// workContext is the context of the vendor calls a request makes, on its
// own goroutine or on workers (token pages, the flags call, a shared
// flight): the request's cancellation and its id, as plain values. It never
// carries the request's Replacer or vars, which Caddy writes to lazily
// (reading {http.request.uuid} stores it): only the request's own goroutine
// may touch them. Call the returned func when the request is done.
func workContext(r *http.Request, requestID string) (context.Context, context.CancelFunc) {
	// The request's trace span, which is safe to share, goes along: the
	// vendor calls are its children.
	ctx := trace.ContextWithSpan(context.WithValue(context.Background(), requestIDKey{}, requestID), trace.SpanFromContext(r.Context()))
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.Context(), cancel)
	return ctx, func() { stop(); cancel() }
}

// requestIDOf is the request id a work context carries.
func requestIDOf(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// discardBody enforces the body limit on routes that read no body, and
// refuses a body that cannot be read whole, before anything is done.
func (a *AuthKit) discardBody(r *http.Request) error {
	tooLarge := func() error {
		return newError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than "+strconv.FormatInt(a.MaxBodySize, 10)+" bytes")
	}
	if r.ContentLength > a.MaxBodySize {
		return tooLarge()
	}
	if r.Body == nil {
		return nil
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, a.MaxBodySize+1))
	if err != nil {
		return errBodyInvalid()
	}
	if n > a.MaxBodySize {
		return tooLarge()
	}
	return nil
}

func errBodyInvalid() *apiError {
	return newError(http.StatusBadRequest, "body_invalid", "the request body could not be read")
}

// positiveParam validates a query number, or returns fallback when absent.
func positiveParam(value, name, fallback string, max int) (string, error) {
	if value == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 1 || n > max {
		return "", newError(http.StatusBadRequest, "query_invalid", name+" must be a whole number from 1 to "+strconv.Itoa(max))
	}
	return strconv.Itoa(n), nil
}
