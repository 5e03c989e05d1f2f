package caddyauthkit

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func newRecorder() (*recorder, *httptest.ResponseRecorder) {
	out := httptest.NewRecorder()
	return &recorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: out}}, out
}

// TestRecorderRecordsWhatWasAnswered: the status and size the metrics and
// the audit read, by Write, WriteHeader and ReadFrom (io.Copy's way).
func TestRecorderRecordsWhatWasAnswered(t *testing.T) {
	w, out := newRecorder()
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte("abc"))
	if w.status != http.StatusCreated || w.bytes != 3 || out.Code != http.StatusCreated {
		t.Fatalf("status %d, %d bytes", w.status, w.bytes)
	}
	w, _ = newRecorder()
	if n, err := w.ReadFrom(strings.NewReader("hello")); err != nil || n != 5 || w.status != http.StatusOK || w.bytes != 5 {
		t.Fatalf("ReadFrom: %d %v, status %d, %d bytes", n, err, w.status, w.bytes)
	}
}

// TestRecorderTakesCaddysProxy499OnlyWhileProxying: Caddy's proxy writes
// 499 when the request was cancelled; passthrough answers instead. Any
// other 499 (the gateway's own client_closed) is written as it is.
func TestRecorderTakesCaddysProxy499OnlyWhileProxying(t *testing.T) {
	w, out := newRecorder()
	w.proxying = true
	w.WriteHeader(499)
	if !w.canceled || w.status != 0 || out.Code != http.StatusOK || out.Flushed {
		t.Fatalf("the proxy's 499 was written: canceled %v, status %d", w.canceled, w.status)
	}
	w, out = newRecorder()
	w.WriteHeader(499)
	if w.canceled || w.status != 499 || out.Code != 499 {
		t.Fatalf("the gateway's own 499: canceled %v, status %d, written %d", w.canceled, w.status, out.Code)
	}
}

// TestWriteErrorAnswersTheEnvelope: one JSON envelope, never cached, with
// Retry-After where the caller may retry.
func TestWriteErrorAnswersTheEnvelope(t *testing.T) {
	m, _ := newMetrics(nil)
	a := &AuthKit{logger: zap.NewNop(), metrics: m}
	w, out := newRecorder()
	rq := &request{r: httptest.NewRequest("GET", "/authkit/connections", nil), route: connectionsRoute}
	err := newError(http.StatusTooManyRequests, "vendor_rate_limited", "slow down")
	err.retryAfter = 7
	a.writeError(w, rq, errorBody(err))
	var env struct{ Error apiError }
	if json.Unmarshal(out.Body.Bytes(), &env) != nil || env.Error.Code != "vendor_rate_limited" || !env.Error.Retryable ||
		out.Code != 429 || out.Header().Get("Retry-After") != "7" || out.Header().Get("Cache-Control") != "no-store" ||
		out.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v %s", out.Code, out.Header(), out.Body)
	}
	w, out = newRecorder()
	a.writeError(w, rq, errorBody(errors.New("dial tcp: refused")))
	if out.Code != http.StatusBadGateway || !strings.Contains(out.Body.String(), `"code":"vendor_unreachable"`) ||
		out.Header().Get("Retry-After") != "" {
		t.Fatalf("a failure that is not an envelope: %d %s", out.Code, out.Body)
	}
}
