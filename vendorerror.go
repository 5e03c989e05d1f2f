package caddyauthkit

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// vendorError is what the caller is told when the vendor itself (not a third
// party behind passthrough) answers status: the one mapping of the vendor's
// failures, for every route. Both generations of the vendor's error body are
// read (V1 {type, code, status, key, message, meta}; V2 and One {code,
// correlationId, key, message, status, type}); only the HTTP status decides,
// never `code`, whose values collide across generations.
//
//   - 401, 403: the vendor rejects the gateway's secret: 502, not retryable;
//   - 429: 429 with Retry-After;
//   - 5xx: 502, retryable;
//   - any other 4xx: that status, not retryable, with the vendor's message.
func vendorError(status int, h http.Header, body []byte, secret string) *apiError {
	var vendor struct {
		Message       string `json:"message"`
		CorrelationID string `json:"correlationId"`
	}
	_ = json.Unmarshal(body, &vendor)

	var err *apiError
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		err = notRetryable(newError(http.StatusBadGateway, "vendor_rejected_secret", "the vendor rejected the gateway's secret key"))
	case status == http.StatusTooManyRequests:
		err = retryLater(http.StatusTooManyRequests, "vendor_rate_limited", "the vendor is rate-limiting this account", retryAfterSeconds(h))
	case status >= 500:
		err = newError(http.StatusBadGateway, "vendor_unavailable", "the vendor answered "+strconv.Itoa(status))
	default:
		message := http.StatusText(status)
		if safeText(vendor.Message, secret) {
			message = vendor.Message
		}
		err = notRetryable(newError(status, "vendor_refused", "the vendor refused the call: "+message))
	}
	if safeText(vendor.CorrelationID, secret) && len(vendor.CorrelationID) <= 100 {
		err.VendorCorrelationID = vendor.CorrelationID
	}
	return err
}

// safeText: a vendor's string that may be shown to the caller.
func safeText(s, secret string) bool {
	return s != "" && len(s) <= 300 && !strings.Contains(s, secret) &&
		strings.IndexFunc(s, unicode.IsControl) < 0
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
