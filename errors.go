package caddyauthkit

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// apiError is what a caller is told when a request fails: the body of the
// JSON envelope {"error": {...}}.
type apiError struct {
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
	// VendorCorrelationID is the vendor's correlationId of its own error,
	// for the vendor's support.
	VendorCorrelationID string `json:"vendor_correlation_id,omitempty"`
	// Connections lists the candidates of an ambiguous keyless call.
	Connections []connectionSummary `json:"connections,omitempty"`

	// retryAfter is the Retry-After header in seconds, 0 for none.
	retryAfter int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// newError is the envelope for status; 429 and 5xx are retryable.
func newError(status int, code, message string) *apiError {
	return &apiError{
		Status:    status,
		Code:      code,
		Message:   message,
		Retryable: status == http.StatusTooManyRequests || status >= 500,
	}
}

// retryLater is newError with a Retry-After of at least a second.
func retryLater(status int, code, message string, seconds int) *apiError {
	err := newError(status, code, message)
	err.retryAfter = max(seconds, 1)
	return err
}

// notRetryable marks an error the caller cannot cure by trying again, such
// as a gateway that is configured wrong.
func notRetryable(err *apiError) *apiError {
	err.Retryable = false
	return err
}

// errClientGone ends a request whose client left; nobody reads the answer.
var errClientGone = newError(499, "client_closed", "the client went away")

// errorBody finds the envelope an error should be answered with. Errors that
// are not ours (a reverse_proxy failure, say) get one from their status.
func errorBody(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	status := http.StatusBadGateway
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		status = he.StatusCode
	}
	if status == http.StatusGatewayTimeout {
		return errVendorTimeout()
	}
	return newError(status, "vendor_unreachable", "the vendor's API could not be reached")
}

// writeError answers err in the JSON envelope. CORS headers were set before.
func (a *AuthKit) writeError(w http.ResponseWriter, r *http.Request, rt *route, err error) {
	body := errorBody(err)
	if body.Status >= 500 {
		fields := []zap.Field{
			zap.String("route", rt.name),
			zap.Int("status", body.Status),
			zap.String("code", body.Code),
			zap.String("error", body.Message),
			zap.String("request_id", requestID(r)),
		}
		if body.VendorCorrelationID != "" {
			fields = append(fields, zap.String("vendor_correlation_id", body.VendorCorrelationID))
		}
		a.logger.Error("request failed", fields...)
	} else if c := a.logger.Check(zapcore.DebugLevel, "request refused"); c != nil {
		c.Write(zap.String("route", rt.name), zap.Int("status", body.Status), zap.String("code", body.Code),
			zap.String("request_id", requestID(r)))
	}
	a.metrics.request(r, rt.name, body.Status)
	a.metrics.failed(rt.name, body.Code)
	if body.Status == http.StatusForbidden || body.Status == http.StatusUnauthorized {
		a.metrics.denied(body.Code)
	}

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	if body.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(body.retryAfter))
	}
	w.WriteHeader(body.Status)
	_, _ = w.Write(encodeError(body))
}

func encodeError(body *apiError) []byte {
	encoded, _ := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{body})
	return append(encoded, '\n')
}
