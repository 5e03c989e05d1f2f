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

// apiError is what a caller is told when a request fails: the body of the JSON
// envelope {"error": {...}}. Handlers return it wrapped in caddyhttp.Error.
type apiError struct {
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`

	// retryAfter is the Retry-After header in seconds, 0 for none.
	retryAfter int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// newError returns a caddyhttp.HandlerError carrying the envelope to answer.
func newError(status int, code, message string) error {
	return caddyhttp.Error(status, &apiError{
		Status:    status,
		Code:      code,
		Message:   message,
		Retryable: status == http.StatusTooManyRequests || status >= 500,
	})
}

// retryLater is newError with a Retry-After.
func retryLater(status int, code, message string, seconds int) error {
	err := newError(status, code, message)
	if seconds < 1 {
		seconds = 1
	}
	errorBody(err).retryAfter = seconds
	return err
}

// errorBody finds the envelope an error should be answered with. Errors that
// are not ours (a reverse_proxy failure, say) get one from their status.
func errorBody(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	status := http.StatusInternalServerError
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		status = he.StatusCode
	}
	switch status {
	case http.StatusBadGateway:
		return &apiError{Status: status, Code: "pica_unreachable", Message: "Pica could not be reached", Retryable: true}
	case http.StatusGatewayTimeout:
		return &apiError{Status: status, Code: "pica_timeout", Message: "Pica did not answer in time", Retryable: true}
	}
	return &apiError{Status: status, Code: "internal_error", Message: http.StatusText(status), Retryable: status >= 500}
}

// writeError answers err in the JSON envelope. CORS headers were set before.
func (a *AuthKit) writeError(w http.ResponseWriter, r *http.Request, route string, err error) {
	body := errorBody(err)
	if body.Status >= 500 {
		a.logger.Error("request failed",
			zap.String("route", route),
			zap.Int("status", body.Status),
			zap.String("code", body.Code),
			zap.String("error", body.Message))
	} else if c := a.logger.Check(zapcore.DebugLevel, "request refused"); c != nil {
		c.Write(zap.String("route", route), zap.Int("status", body.Status), zap.String("code", body.Code))
	}
	a.metrics.request(route, body.Status)
	if body.Status == 403 || body.Status == 401 {
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
	_ = json.NewEncoder(w).Encode(struct {
		Error *apiError `json:"error"`
	}{body})
}
