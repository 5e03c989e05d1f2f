package vendor

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestRedactRemovesKeysAndAnyPieceOfTheSecret: what the vendor says is
// quoted only without connection keys, secret keys, and any piece of the
// secret of 8 or more characters, in any case and encoding.
func TestRedactRemovesKeysAndAnyPieceOfTheSecret(t *testing.T) {
	piece := testSecret[10:18] // 8 characters: CADDYAUT
	for name, text := range map[string]string{
		"connection key":       "no connection test::gmail::default::af92aee9cbcd4aae904b9b01d3c75c40|bob here",
		"live key":             "key live::slack::default::0123456789abcdef0123456789abcdef is gone",
		"secret":               "bad key " + testSecret,
		"secret upper-cased":   "bad key " + strings.ToUpper(testSecret),
		"secret lower-cased":   "bad key " + strings.ToLower(testSecret),
		"secret cut short":     "bad key …" + testSecret[12:30] + "…",
		"a piece of 8":         "starts " + piece + " ends",
		"a piece in any case":  "starts " + strings.ToLower(piece) + " ends",
		"other secret key":     "try sk_live_1_abcdefghijklmnop",
		"percent-encoded":      "bad " + url.QueryEscape(testSecret),
		"percent, every byte":  "bad " + everyBytePercent(testSecret[5:20]),
		"base64":               "bad " + base64.StdEncoding.EncodeToString([]byte(testSecret)),
		"base64 mid-group":     "bad x" + base64.RawURLEncoding.EncodeToString([]byte("xx"+testSecret[10:30])),
		"hex":                  "bad " + hex.EncodeToString([]byte(testSecret[10:30])),
		"JSON unicode escapes": `bad \u0043\u0041\u0044\u0044\u0059\u0041\u0055\u0054KIT`,
	} {
		got := Redact(text, testSecret)
		for _, banned := range []string{"af92aee9", "0123456789abcdef", strings.ToLower(piece), "abcdefghijklmnop"} {
			if strings.Contains(strings.ToLower(got), banned) {
				t.Fatalf("%s: Redact(%q) = %q keeps %q", name, text, got, banned)
			}
		}
		if got == text {
			t.Fatalf("%s: Redact(%q) changed nothing", name, text)
		}
	}
	for _, text := range []string{"Invalid limit", "Connection header not found", "rate 7 of 8", "sk_ alone", "ABCDEFGH"} {
		if got := Redact(text, testSecret); got != text {
			t.Fatalf("Redact(%q) = %q, want it as it is", text, got)
		}
	}
	if got := Redact("starts "+piece+" ends", testSecret); got != "starts [redacted] ends" {
		t.Fatalf("a piece of the secret in clear is cut where it stands: %q", got)
	}
	if got := Redact("a\nb", testSecret); got != "" {
		t.Fatalf("control characters: %q", got)
	}
}

func everyBytePercent(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{s[i]})))
	}
	return b.String()
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
	if err := Failure(429, h, nil, testSecret); err.RetryAfter != 2 {
		t.Fatalf("429 without its Retry-After: %+v", err)
	}
}
