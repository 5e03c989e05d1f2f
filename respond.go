package caddyauthkit

import (
	"io"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// recorder is the writer every route answers through: it records the
// status and size of the answer, which the metrics and the audit take once
// the route is done.
type recorder struct {
	*caddyhttp.ResponseWriterWrapper
	status int // 0 until the answer started
	bytes  int64
	// proxying: Caddy's proxy is answering. It writes 499 when the
	// request was cancelled, also when the client's body broke; then
	// canceled is set and the route answers instead.
	proxying, canceled bool
}

func (w *recorder) WriteHeader(status int) {
	if status == 499 && w.status == 0 && w.proxying {
		w.canceled = true
		return
	}
	if status >= 200 && w.status == 0 {
		w.status = status
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

// ReadFrom is the wrapped writer's, recorded too (io.Copy prefers it).
func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriterWrapper.ReadFrom(src)
	w.bytes += n
	return n, err
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriterWrapper.Write(b)
	w.bytes += int64(n)
	return n, err
}

// writeJSON answers 200 with body, never cached.
func writeJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writeError answers in the JSON envelope body (CORS headers were set
// before) and logs it: at error level when the gateway or the vendor
// failed, at debug when the caller was refused.
func (a *AuthKit) writeError(w http.ResponseWriter, rq *request, body *apiError) {
	if body.Status >= 500 && body.Code != "overloaded" { // overload is counted, not logged per request
		fields := []zap.Field{
			zap.String("route", rq.route.name),
			zap.Int("status", body.Status),
			zap.String("code", body.Code),
			zap.String("error", body.Message),
			zap.String("uuid", rq.requestID()),
		}
		if body.VendorCorrelationID != "" {
			fields = append(fields, zap.String("vendor_correlation_id", body.VendorCorrelationID))
		}
		a.logger.Error("request failed", fields...)
	} else if c := a.logger.Check(zapcore.DebugLevel, "request refused"); c != nil {
		c.Write(zap.String("route", rq.route.name), zap.Int("status", body.Status), zap.String("code", body.Code),
			zap.String("uuid", rq.requestID()))
	}
	a.metrics.failed(rq.route.name, body.Code)

	encoded := encodeError(body)
	setEnvelopeHeaders(w.Header(), body, len(encoded))
	w.WriteHeader(body.Status)
	_, _ = w.Write(encoded)
}
