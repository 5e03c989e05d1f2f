package caddyauthkit

import (
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

// vendorHooks let the module see each call of the vendor client: its
// latency and outcome in the metrics, a debug line and a trace span per
// attempt, and retries. They run on whatever goroutine makes the call, so
// they touch only the call's request, whose context is a work context.
func (a *AuthKit) vendorHooks() vendor.Hooks {
	return vendor.Hooks{
		Call: func(req *http.Request, endpoint string, attempt int) func(int, error) {
			start := time.Now()
			endSpan := startVendorSpan(req, endpoint, attempt)
			return func(status int, err error) {
				d := time.Since(start)
				outcome := strconv.Itoa(status)
				if err != nil {
					outcome = "error"
				}
				a.metrics.vendorCall(endpoint, outcome, d)
				a.logVendorCall(req, endpoint, attempt, status, err, d)
				endSpan(status, err)
			}
		},
		Retry: a.metrics.retry,
	}
}

// logVendorCall writes the debug line of one call: never its query (it
// names identities and keys), never the error's URL.
func (a *AuthKit) logVendorCall(req *http.Request, endpoint string, attempt, status int, err error, d time.Duration) {
	c := a.logger.Check(zapcore.DebugLevel, "vendor call")
	if c == nil {
		return
	}
	fields := []zap.Field{
		zap.String("endpoint", endpoint),
		zap.String("method", req.Method),
		zap.String("path", req.URL.Path),
		zap.Int("status", status),
		zap.Duration("duration", d),
		zap.Int("attempt", attempt),
		zap.String("uuid", requestIDOf(req.Context())),
	}
	if err != nil {
		fields = append(fields, zap.String("error", vendor.Cause(err)))
	}
	c.Write(fields...)
}
