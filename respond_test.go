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
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
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
	// An informational answer is not the answer; a 200 without a body is.
	w, _ = newRecorder()
	w.WriteHeader(http.StatusEarlyHints)
	if w.status != 0 {
		t.Fatalf("103 recorded as the answer")
	}
	w.WriteHeader(http.StatusOK)
	if w.status != http.StatusOK {
		t.Fatalf("a 200 without a body recorded as %d", w.status)
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

// TestWriteErrorLogsFailuresAndRefusalsApart: the gateway's or the
// vendor's failure (5xx, 500 included) is an error line with the vendor's
// correlation id when it gave one; a refused caller, and overload (which
// is counted), are a debug line only.
func TestWriteErrorLogsFailuresAndRefusalsApart(t *testing.T) {
	m, _ := newMetrics(nil)
	core, logs := observer.New(zapcore.DebugLevel)
	a := &AuthKit{logger: zap.New(core), metrics: m}
	rq := &request{r: httptest.NewRequest("GET", "/authkit/connections", nil), route: connectionsRoute}
	write := func(err *apiError) []observer.LoggedEntry {
		w, _ := newRecorder()
		a.writeError(w, rq, err)
		return logs.TakeAll()
	}
	failed := newError(http.StatusInternalServerError, "vendor_unavailable", "down")
	failed.VendorCorrelationID = "corr-1"
	if got := write(failed); len(got) != 1 || got[0].Level != zapcore.ErrorLevel || got[0].Message != "request failed" ||
		got[0].ContextMap()["vendor_correlation_id"] != "corr-1" {
		t.Fatalf("a 500: %v", got)
	}
	if got := write(newError(http.StatusBadGateway, "vendor_unavailable", "down")); len(got) != 1 ||
		got[0].Level != zapcore.ErrorLevel || got[0].ContextMap()["vendor_correlation_id"] != nil {
		t.Fatalf("a 502 without the vendor's id: %v", got)
	}
	if got := write(newError(http.StatusServiceUnavailable, "overloaded", "busy")); len(got) != 1 || got[0].Level != zapcore.DebugLevel {
		t.Fatalf("overload logged as a failure: %v", got)
	}
	if got := write(newError(http.StatusForbidden, "connection_not_owned", "no")); len(got) != 1 ||
		got[0].Level != zapcore.DebugLevel || got[0].Message != "request refused" || got[0].ContextMap()["code"] != "connection_not_owned" {
		t.Fatalf("a refusal: %v", got)
	}
}
