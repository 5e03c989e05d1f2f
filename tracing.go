package caddyauthkit

import (
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

// tracerName names the module's spans.
const tracerName = "github.com/caddyauthkit/caddyauthkit"

// propagator carries the trace context to the vendor, in the formats
// Caddy's tracing directive uses (OTEL_PROPAGATORS, by default W3C trace
// context and baggage).
var propagator = autoprop.NewTextMapPropagator()

// startVendorSpan makes one attempt of a vendor call a child span of the
// request's span, when the site uses Caddy's tracing directive, and puts
// the span's context on req's headers for the vendor. The span says the
// endpoint, method, attempt, status and duration: never the URL (its query
// names identities and keys), a header, or the secret. end records the
// outcome; for a request that is not traced, it does nothing.
func startVendorSpan(req *http.Request, endpoint string, attempt int) (end func(status int, err error)) {
	parent := trace.SpanFromContext(req.Context())
	if !parent.IsRecording() {
		return func(int, error) {}
	}
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(req.Context(), "authkit vendor "+endpoint,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("authkit.vendor.endpoint", endpoint),
			attribute.String("http.request.method", req.Method),
			attribute.Int("authkit.vendor.attempt", attempt),
		))
	propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	start := time.Now()
	return func(status int, err error) {
		span.SetAttributes(
			attribute.Int("http.response.status_code", status),
			attribute.Float64("authkit.vendor.duration_seconds", time.Since(start).Seconds()),
		)
		switch {
		case err != nil:
			span.SetStatus(codes.Error, vendor.Cause(err))
		case status >= 500:
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()
	}
}
