package caddyauthkit

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// otlpReceiver is an in-process OTLP/gRPC trace collector: what Caddy's
// tracing exports, configured by the standard OTEL_* variables.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracev1.Span
}

func (o *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (o *otlpReceiver) received() []*tracev1.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*tracev1.Span(nil), o.spans...)
}

// startOTLPReceiver listens on loopback and points Caddy's tracing at it.
func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	receiver := new(otlpReceiver)
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, receiver)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+l.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	return receiver
}

// TestVendorCallsAreChildSpansOfTheRequest: under Caddy's tracing
// directive, each call to the vendor (the token's pages and flags, the
// ownership lookup, passthrough) is a child span of the request's span,
// with its endpoint, status, attempt and duration, and the vendor receives
// that span's trace context. A call the vendor fails is an error span.
// Nothing secret is in any span.
func TestVendorCallsAreChildSpansOfTheRequest(t *testing.T) {
	receiver := startOTLPReceiver(t)
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 150})
	alice := pica.AddConnection("alice", "user", "gmail")
	api := httptest.NewServer(pica)
	defer api.Close()
	g := startSite(t, fmt.Sprintf(`	tracing {
		span authkit-request
	}
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
		identity {http.request.header.X-User}
		ticket_only off
	}
`, api.URL))
	expect(t, g.do(call{method: "POST", url: appURL + "/authkit/token", header: map[string]string{"X-User": "alice"}}), 200, "")
	expect(t, g.do(call{method: "GET", url: appURL + "/authkit/passthrough/gmail/v1/users/me",
		header: map[string]string{"X-User": "alice", "X-Pica-Connection-Key": alice.Key}}), 200, "")

	want := []string{"authkit vendor token", "authkit vendor flags", "authkit vendor vault_list", "authkit vendor passthrough"}
	var spans []*tracev1.Span
	byName := func(name string) []*tracev1.Span {
		var out []*tracev1.Span
		for _, s := range spans {
			if s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}
	exported := poll(t, 10*time.Second, func() bool {
		spans = receiver.received()
		for _, name := range want {
			if len(byName(name)) == 0 {
				return false
			}
		}
		return len(byName("authkit-request")) == 2
	})
	if !exported {
		t.Fatalf("spans exported: %v", names(spans))
	}
	requests := byName("authkit-request")
	for _, name := range want {
		for _, span := range byName(name) {
			parent := parentIn(span, requests)
			if parent == nil {
				t.Fatalf("%s is not a child of a request span", name)
			}
			attrs := attributes(span)
			endpoint := strings.TrimPrefix(name, "authkit vendor ")
			if attrs["authkit.vendor.endpoint"] != endpoint || attrs["http.response.status_code"] != "200" ||
				attrs["authkit.vendor.attempt"] != "1" || attrs["authkit.vendor.duration_seconds"] == "" ||
				span.Kind != tracev1.Span_SPAN_KIND_CLIENT || span.EndTimeUnixNano <= span.StartTimeUnixNano ||
				span.GetStatus().GetCode() != tracev1.Status_STATUS_CODE_UNSET {
				t.Fatalf("%s: attributes %v, kind %v, status %v", name, attrs, span.Kind, span.GetStatus())
			}
			// The vendor got this span's context, as W3C traceparent.
			traceparent := "00-" + hex.EncodeToString(span.TraceId) + "-" + hex.EncodeToString(span.SpanId) + "-01"
			if !vendorGot(pica, endpoint, traceparent) {
				t.Fatalf("%s: the vendor did not receive traceparent %s", name, traceparent)
			}
		}
	}

	// A vendor's 500 is an error span, each attempt.
	pica.SetFault("vault_list", sandbox.Fault{Status: 500})
	expect(t, g.do(call{method: "GET", url: appURL + "/authkit/connections", header: map[string]string{"X-User": "alice"}}), 502, "vendor_unavailable")
	var failed []*tracev1.Span
	if !poll(t, 10*time.Second, func() bool {
		spans, failed = receiver.received(), nil
		for _, span := range byName("authkit vendor vault_list") {
			if attributes(span)["http.response.status_code"] == "500" {
				failed = append(failed, span)
			}
		}
		return len(failed) > 0
	}) {
		t.Fatalf("no span for the vendor's 500: %v", names(spans))
	}
	for _, span := range failed {
		if span.GetStatus().GetCode() != tracev1.Status_STATUS_CODE_ERROR {
			t.Fatalf("the vendor's 500 has span status %v", span.GetStatus())
		}
	}
	for _, s := range spans {
		text := prototext.Format(s)
		for _, secret := range []string{testSecret, testSecret[10:30], alice.Key, "alice", alice.Key[len(alice.Key)-16:]} {
			if strings.Contains(text, secret) {
				t.Fatalf("span %q holds %q:\n%s", s.Name, secret, text)
			}
		}
	}
}

func names(spans []*tracev1.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func parentIn(span *tracev1.Span, candidates []*tracev1.Span) *tracev1.Span {
	for _, c := range candidates {
		if string(c.SpanId) == string(span.ParentSpanId) && string(c.TraceId) == string(span.TraceId) {
			return c
		}
	}
	return nil
}

func attributes(span *tracev1.Span) map[string]string {
	out := make(map[string]string)
	for _, kv := range span.Attributes {
		switch v := kv.Value.Value.(type) {
		case *commonv1.AnyValue_StringValue:
			out[kv.Key] = v.StringValue
		case *commonv1.AnyValue_IntValue:
			out[kv.Key] = fmt.Sprint(v.IntValue)
		case *commonv1.AnyValue_DoubleValue:
			out[kv.Key] = fmt.Sprint(v.DoubleValue)
		}
	}
	return out
}

// vendorGot: a request the sandbox recorded on endpoint carried traceparent.
func vendorGot(pica *sandbox.Server, endpoint, traceparent string) bool {
	for _, r := range pica.Requests() {
		if r.Endpoint == endpoint && r.Header.Get("Traceparent") == traceparent {
			return true
		}
	}
	return false
}
