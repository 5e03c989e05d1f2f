package vendor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
)

// testSecret is a secret key of the vendor's shape.
const testSecret = "sk_test_1_CADDYAUTHKITsecretVALUEnotToBeSeen42"

func TestFailureMapsByStatus(t *testing.T) {
	for _, tc := range []struct {
		status     int
		wantStatus int
		code       string
		retryable  bool
	}{
		{401, 502, "vendor_rejected_secret", false},
		{403, 502, "vendor_rejected_secret", false},
		{429, 429, "vendor_rate_limited", true},
		{500, 502, "vendor_unavailable", true},
		{503, 502, "vendor_unavailable", true},
		{599, 502, "vendor_unavailable", true},
		{400, 400, "vendor_refused", false},
		{404, 404, "vendor_refused", false},
		{422, 422, "vendor_refused", false},
		{499, 499, "vendor_refused", false},
	} {
		err := Failure(tc.status, http.Header{}, nil, testSecret)
		if err.Status != tc.wantStatus || err.Code != tc.code || err.Retryable != tc.retryable || err.VendorStatus != tc.status {
			t.Fatalf("vendor %d: %+v; want %d %s %v", tc.status, err, tc.wantStatus, tc.code, tc.retryable)
		}
	}
}

// TestFailureQuotesTheVendorOnlyCleaned: the message is the gateway's own;
// the vendor's text goes to VendorMessage, cleaned of keys and of the
// secret, and the correlation id is kept only when clean and short.
func TestFailureQuotesTheVendorOnlyCleaned(t *testing.T) {
	v1 := `{"type":"validation","code":2000,"status":400,"key":"err::x","message":"Invalid limit","meta":{}}`
	err := Failure(400, nil, []byte(v1), testSecret)
	if err.Message != "the vendor refused the call (400 Bad Request)" || err.VendorMessage != "Invalid limit" {
		t.Fatalf("V1 error: %+v", err)
	}
	one := `{"message":"bad page","correlationId":"c0ffee-42"}`
	if err := Failure(400, nil, []byte(one), testSecret); err.CorrelationID != "c0ffee-42" || err.VendorMessage != "bad page" {
		t.Fatalf("One error: %+v", err)
	}
	for name, body := range map[string]string{
		"secret id":     `{"message":"x","correlationId":"` + testSecret + `"}`,
		"control id":    `{"message":"x","correlationId":"a\u0000"}`,
		"long id":       `{"message":"x","correlationId":"` + strings.Repeat("c", 101) + `"}`,
		"not JSON":      `<html>` + testSecret,
		"control first": `{"message":"\u001bb"}`,
	} {
		err := Failure(404, nil, []byte(body), testSecret)
		if err.CorrelationID != "" || strings.Contains(err.VendorMessage, "CADDYAUTHKIT") || strings.ContainsRune(err.VendorMessage, 0x1b) {
			t.Fatalf("%s: %+v", name, err)
		}
	}
	// The limits are inclusive.
	body := `{"message":"` + strings.Repeat("m", 300) + `","correlationId":"` + strings.Repeat("c", 100) + `"}`
	if err := Failure(404, nil, []byte(body), testSecret); len(err.CorrelationID) != 100 || len(err.VendorMessage) != 300 {
		t.Fatalf("at the limits: %+v", err)
	}
}

func TestRetryAfterSecondsReadsDelaysAndTimes(t *testing.T) {
	in := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }
	for _, tc := range []struct {
		header, value string
		min, max      int
	}{
		{"Retry-After", "7", 7, 7},
		{"Retry-After", "3600", 3600, 3600},
		{"Retry-After", "3601", 0, 0},
		{"Retry-After", "0", 0, 0},
		{"Retry-After", "-5", 0, 0},
		{"Retry-After", "soon", 0, 0},
		{"x-pica-rate-limit-reset", strconv.FormatInt(in(30*time.Second), 10), 29, 31},
		{"x-pica-rate-limit-reset", strconv.FormatInt(in(30*time.Second)*1000, 10), 29, 31},
		{"x-pica-rate-limit-reset", strconv.FormatInt(in(-time.Minute), 10), 0, 0},
		{"x-pica-rate-limit-reset", strconv.FormatInt(in(2*time.Hour), 10), 0, 0},
	} {
		h := http.Header{}
		h.Set(tc.header, tc.value)
		if got := retryAfterSeconds(h); got < tc.min || got > tc.max {
			t.Fatalf("%s: %s → %d, want %d..%d", tc.header, tc.value, got, tc.min, tc.max)
		}
	}
	h := http.Header{}
	h.Set("Retry-After", "2")
	h.Set("x-pica-rate-limit-reset", "9")
	if got := retryAfterSeconds(h); got != 2 {
		t.Fatalf("Retry-After comes first: %d", got)
	}
	// A reset already past is no wait: the other header is read.
	h.Set("Retry-After", strconv.FormatInt(in(-time.Second), 10))
	h.Set("x-pica-rate-limit-reset", "9")
	if got := retryAfterSeconds(h); got != 9 {
		t.Fatalf("a Retry-After just past hides x-pica-rate-limit-reset: %d", got)
	}
	h.Set("Retry-After", "2")
	if err := Failure(429, h, nil, testSecret); err.RetryAfter != 2 {
		t.Fatalf("429 without its Retry-After: %+v", err)
	}
	if err := Failure(429, http.Header{"Retry-After": {"soon"}}, nil, testSecret); err.RetryAfter != 1 {
		t.Fatalf("a 429 with no usable Retry-After asks for 1 s, not %d", err.RetryAfter)
	}
}

// TestCauseReadsTheErrorBehindTheCall: whatever wraps it, the cause names
// the failure a person setting the gateway up can act on; an Error names
// the network failure behind it, else the vendor's status, else its own
// message.
func TestCauseReadsTheErrorBehindTheCall(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("Get \"https://api\": %w", err) }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{wrap(syscall.ECONNREFUSED), "connection refused"},
		{wrap(syscall.ECONNRESET), "connection reset"},
		{wrap(&net.DNSError{Err: "no such host", Name: "api.invalid"}), "DNS: no such host (api.invalid)"},
		{wrap(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "api"}), "TLS: the certificate is not trusted: x509: "},
		{wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), "TLS: the server does not speak TLS"},
		{errors.New("http: server gave HTTP response to HTTPS client"), "TLS: the server does not speak TLS"},
		{wrap(tls.AlertError(40)), "TLS: tls: handshake failure"},
		{wrap(context.DeadlineExceeded), "timeout"},
		{Failure(404, nil, nil, testSecret), "the vendor answered 404 Not Found"},
		{errUnreachable(errors.New("proxy: dial tcp: connection refused")), "connection refused"},
		{errUnreachable(errors.New("lookup api.invalid: no such host")), "DNS: no such host"},
		{errUnreachable(errors.New("proxy: bad gateway")), "proxy: bad gateway"},
		{BadAnswer("no rows array"), "the vendor's answer could not be used: no rows array"},
		{errOverloaded(), "too many calls to the vendor in flight"},
	} {
		if got := Cause(tc.err); !strings.HasPrefix(got, tc.want) {
			t.Errorf("Cause(%v) = %q, want %q…", tc.err, got, tc.want)
		}
	}
}

// failureMapping is the status, code and retryability the gateway answers
// for an error of the vendor's own with that status.
func failureMapping(status int) (int, string, bool) {
	switch {
	case status == 401 || status == 403:
		return 502, "vendor_rejected_secret", false
	case status == 429:
		return 429, "vendor_rate_limited", true
	case status >= 500:
		return 502, "vendor_unavailable", true
	}
	return status, "vendor_refused", false
}

// FuzzFailure: whatever the vendor's error body and Retry-After, Failure
// answers what the status mapping says, in the gateway's own words; it
// quotes the vendor's message and correlation id only short, without
// control characters and without any 8-character piece of the secret in
// any case; and only a 429 asks the caller to wait, 1 s to an hour.
func FuzzFailure(f *testing.F) {
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		if status < 300 || status > 999 { // what reaches Failure: 300 to 999
			status = 300 + (status%700+700)%700
		}
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		err := Failure(status, h, body, testSecret)
		wantStatus, code, retryable := failureMapping(status)
		if err.Status != wantStatus || err.Code != code || err.Retryable != retryable || err.VendorStatus != status {
			t.Fatalf("Failure(%d): %+v; want %d %s retryable=%v", status, err, wantStatus, code, retryable)
		}
		if own := Failure(status, h, nil, testSecret).Message; err.Message != own || own == "" {
			t.Fatalf("Failure(%d, %q): message %q, not the gateway's own %q", status, body, err.Message, own)
		}
		for name, quoted := range map[string]string{"VendorMessage": err.VendorMessage, "CorrelationID": err.CorrelationID} {
			if p := pieceOfSecret(quoted, testSecret); p != "" {
				t.Fatalf("Failure(%d, %q): %s %q holds %q of the secret", status, body, name, quoted, p)
			}
			if len(quoted) > 300 || strings.IndexFunc(quoted, unicode.IsControl) >= 0 {
				t.Fatalf("Failure(%d, %q): %s %q", status, body, name, quoted)
			}
		}
		if len(err.CorrelationID) > 100 {
			t.Fatalf("Failure(%d, %q): correlation id of %d bytes", status, body, len(err.CorrelationID))
		}
		if status == 429 && (err.RetryAfter < 1 || err.RetryAfter > 3600) || status != 429 && err.RetryAfter != 0 {
			t.Fatalf("Failure(%d) with Retry-After %q: RetryAfter %d", status, retryAfter, err.RetryAfter)
		}
	})
}
