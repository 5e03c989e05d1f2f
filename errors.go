package caddyauthkit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddyauthkit/caddyauthkit/internal/inspect"
	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

// apiError is what a caller is told when a request fails: the body of the
// JSON envelope {"error": {...}}.
type apiError struct {
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
	// VendorMessage quotes the vendor's own text, cleaned of keys and of
	// any piece of the secret.
	VendorMessage string `json:"vendor_message,omitempty"`
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

// errClientGone ends a request whose client left; nobody reads the answer.
func errClientGone() *apiError { return newError(499, "client_closed", "the client went away") }

func errVendorTimeout() *apiError {
	return newError(http.StatusGatewayTimeout, "vendor_timeout", "the vendor did not answer in time")
}

// errorBody is the one place where a failure becomes the envelope: the
// gateway's own errors, the vendor's (typed by the vendor client), refused
// input, a client that left, and the failures of Caddy's proxy.
func errorBody(err error) *apiError {
	var (
		own     *apiError
		vendErr *vendor.Error
		refusal *inspect.Refusal
		handler caddyhttp.HandlerError
	)
	switch {
	case errors.As(err, &own):
		return own
	case errors.As(err, &vendErr):
		return &apiError{
			Status: vendErr.Status, Code: vendErr.Code, Message: vendErr.Message, Retryable: vendErr.Retryable,
			VendorMessage: vendErr.VendorMessage, VendorCorrelationID: vendErr.CorrelationID, retryAfter: vendErr.RetryAfter,
		}
	case errors.As(err, &refusal):
		return newError(refusal.Status, refusal.Code, refusal.Message)
	case errors.Is(err, context.Canceled):
		return errClientGone()
	case errors.Is(err, context.DeadlineExceeded):
		return errVendorTimeout()
	case errors.As(err, &handler):
		switch handler.StatusCode {
		case http.StatusGatewayTimeout:
			return errVendorTimeout()
		case 0, http.StatusBadGateway:
		default:
			return newError(handler.StatusCode, "vendor_unreachable", "the vendor's API could not be reached")
		}
	}
	return newError(http.StatusBadGateway, "vendor_unreachable", "the vendor's API could not be reached")
}

// encodeError is the envelope of body, as written.
func encodeError(body *apiError) []byte {
	encoded, _ := json.Marshal(struct {
		Error *apiError `json:"error"`
	}{body})
	return append(encoded, '\n')
}

// setEnvelopeHeaders sets the headers of body's envelope, size bytes long.
func setEnvelopeHeaders(h http.Header, body *apiError, size int) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(size))
	if body.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(body.retryAfter))
	}
}
