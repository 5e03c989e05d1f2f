package caddyauthkit

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestVendorErrorMapsByStatus(t *testing.T) {
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
		err := vendorError(tc.status, http.Header{}, nil, testSecret)
		if err.Status != tc.wantStatus || err.Code != tc.code || err.Retryable != tc.retryable {
			t.Fatalf("vendor %d: %d %s retryable %v; want %d %s %v", tc.status, err.Status, err.Code, err.Retryable, tc.wantStatus, tc.code, tc.retryable)
		}
	}
}

func TestVendorErrorKeepsOnlySafeVendorText(t *testing.T) {
	v1 := `{"type":"validation","code":2000,"status":400,"key":"err::x","message":"Invalid limit","meta":{}}`
	if err := vendorError(400, nil, []byte(v1), testSecret); err.Message != "the vendor refused the call: Invalid limit" {
		t.Fatalf("message %q", err.Message)
	}
	one := `{"message":"bad page","correlationId":"c0ffee-42"}`
	if err := vendorError(400, nil, []byte(one), testSecret); err.VendorCorrelationID != "c0ffee-42" || !strings.HasSuffix(err.Message, ": bad page") {
		t.Fatalf("One error: %+v", err)
	}
	for name, body := range map[string]string{
		"secret":        `{"message":"your key ` + testSecret + ` is bad","correlationId":"` + testSecret + `"}`,
		"control":       `{"message":"a\nb","correlationId":"a\u0000"}`,
		"control first": `{"message":"\u001bb","correlationId":"\nc"}`,
		"too long":      `{"message":"` + strings.Repeat("m", 301) + `","correlationId":"` + strings.Repeat("c", 101) + `"}`,
		"not JSON":      `<html>` + testSecret,
	} {
		err := vendorError(404, nil, []byte(body), testSecret)
		if err.Message != "the vendor refused the call: Not Found" || err.VendorCorrelationID != "" {
			t.Fatalf("%s: %+v", name, err)
		}
	}
	// The limits are inclusive.
	body := `{"message":"` + strings.Repeat("m", 300) + `","correlationId":"` + strings.Repeat("c", 100) + `"}`
	if err := vendorError(404, nil, []byte(body), testSecret); len(err.VendorCorrelationID) != 100 || !strings.HasSuffix(err.Message, strings.Repeat("m", 300)) {
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
	if err := vendorError(429, h, nil, testSecret); err.retryAfter != 2 {
		t.Fatalf("429 without its Retry-After: %+v", err)
	}
}
