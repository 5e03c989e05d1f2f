package vendor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Error is a failed call to the vendor, as the gateway answers it: the
// status and code of its envelope, in the gateway's own words, and what
// the vendor said, cleaned.
type Error struct {
	// Status is the gateway's answer: 502 when the vendor rejects the
	// secret, fails or answers garbage, 504 when it does not answer in
	// time, 429 when it rate-limits, 503 when too many calls are in flight,
	// or the vendor's own 4xx refusing a caller's passthrough call.
	Status int
	// Code names the failure in the envelope: vendor_rejected_secret,
	// vendor_rate_limited, vendor_unavailable, vendor_refused,
	// vendor_bad_response, vendor_timeout, vendor_unreachable, overloaded.
	Code string
	// Message is the gateway's own sentence.
	Message   string
	Retryable bool
	// RetryAfter is the Retry-After to answer with, in seconds; 0 for none.
	RetryAfter int
	// VendorStatus is the status the vendor answered, 0 when none came.
	VendorStatus int
	// VendorMessage is the vendor's own text, with anything shaped like a
	// key and any piece of the secret removed (see redact); "" when unsafe.
	VendorMessage string
	// CorrelationID is the vendor's id of its error, for its support.
	CorrelationID string
	// Err is the network failure behind the error, if any: for logs and
	// the doctor, never for a caller.
	Err error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

func newError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message, Retryable: status == http.StatusTooManyRequests || status >= 500}
}

// Failure maps an error answer of the vendor's own (not a third party's
// behind passthrough) to what the caller is told: the one mapping of the
// vendor's failures, for every route. Both generations of the vendor's
// error body are read (V1 {type, code, status, key, message, meta}; V2 and
// One {code, correlationId, key, message, status, type}); only the HTTP
// status decides, never `code`, whose values collide across generations.
//
//   - 401, 403: the vendor rejects the gateway's secret: 502, not retryable;
//   - 429: 429 with Retry-After;
//   - 5xx: 502, retryable;
//   - any other 4xx: that status, not retryable (the caller's call was
//     refused; the Client turns it into 502 for the gateway's own calls).
func Failure(status int, h http.Header, body []byte, secret string) *Error {
	var vendor struct {
		Message       string `json:"message"`
		CorrelationID string `json:"correlationId"`
	}
	_ = json.Unmarshal(body, &vendor)

	var err *Error
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		err = newError(http.StatusBadGateway, "vendor_rejected_secret", "the vendor rejected the gateway's secret key")
		err.Retryable = false
	case status == http.StatusTooManyRequests:
		err = newError(http.StatusTooManyRequests, "vendor_rate_limited", "the vendor is rate-limiting this account")
		err.RetryAfter = max(retryAfterSeconds(h), 1)
	case status >= 500:
		err = newError(http.StatusBadGateway, "vendor_unavailable", "the vendor answered "+strconv.Itoa(status))
	default:
		err = newError(status, "vendor_refused", "the vendor refused the call ("+strconv.Itoa(status)+" "+http.StatusText(status)+")")
		err.Retryable = false
	}
	err.VendorStatus = status
	err.VendorMessage = redact(vendor.Message, secret)
	if id := redact(vendor.CorrelationID, secret); id == vendor.CorrelationID && len(id) <= 100 {
		err.CorrelationID = id
	}
	return err
}

// retryAfterSeconds reads Retry-After (seconds) or the vendor's
// x-pica-rate-limit-reset (a delay or a Unix time).
func retryAfterSeconds(h http.Header) int {
	for _, name := range []string{"Retry-After", "x-pica-rate-limit-reset"} {
		if n, err := strconv.Atoi(h.Get(name)); err == nil && n > 0 {
			if n > 1_000_000_000_000 { // Unix milliseconds
				n /= 1000
			}
			if n > 1_000_000_000 { // a Unix time, not a delay
				n = int(time.Until(time.Unix(int64(n), 0)).Seconds()) + 1
			}
			if n > 0 && n <= 3600 {
				return n
			}
		}
	}
	return 0
}

// BadAnswer is a 2xx the gateway cannot use: not JSON, cut short, or of
// the wrong shape.
func BadAnswer(why string) *Error {
	return newError(http.StatusBadGateway, "vendor_bad_response", "the vendor's answer could not be used: "+why)
}

// errOverloaded is the answer when max_concurrent calls are in flight.
func errOverloaded() *Error {
	err := newError(http.StatusServiceUnavailable, "overloaded", "too many calls to the vendor in flight")
	err.RetryAfter = 1
	return err
}

func errTimeout(cause error) *Error {
	err := newError(http.StatusGatewayTimeout, "vendor_timeout", "the vendor did not answer in time")
	err.Err = cause
	return err
}

func errUnreachable(cause error) *Error {
	err := newError(http.StatusBadGateway, "vendor_unreachable", "the vendor's API could not be reached")
	err.Err = cause
	return err
}

// Cause says in a few words why a call failed, for a person setting the
// gateway up: connection refused, DNS, TLS, timeout, or the vendor's status.
func Cause(err error) string {
	var (
		dns       *net.DNSError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		alert     tls.AlertError
		netErr    net.Error
		e         *Error
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &dns):
		return "DNS: " + dns.Err + " (" + dns.Name + ")"
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return "TLS: the certificate is not trusted: " + rootCause(err)
	case errors.As(err, &record), err != nil && strings.Contains(rootCause(err), "server gave HTTP response to HTTPS client"):
		return "TLS: the server does not speak TLS (is `api` http:// ?)"
	case errors.As(err, &alert):
		return "TLS: " + alert.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &e) && e.VendorStatus != 0:
		return "the vendor answered " + strconv.Itoa(e.VendorStatus) + " " + http.StatusText(e.VendorStatus)
	case errors.As(err, &e) && e.Err != nil:
		return Cause(e.Err)
	case errors.As(err, &e):
		return e.Message
	}
	// Caddy's transport wraps dial errors without Unwrap: read the words.
	switch text := rootCause(err); {
	case strings.Contains(text, "connection refused"):
		return "connection refused"
	case strings.Contains(text, "no such host"):
		return "DNS: no such host"
	default:
		return text
	}
}

func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
