package sandbox

import (
	"strings"
	"testing"
)

func TestOnePassthroughNamesAndRenames(t *testing.T) {
	s := New(Options{Provider: ProviderOne})
	c := s.AddConnection("alice", "user", "slack")
	// Pica's connection-key header is no key to One.
	res, body := callOne(t, s, "GET", "/v1/passthrough/x", DefaultSecret, "", map[string]string{"X-Pica-Connection-Key": c.Key})
	checkOneError(t, 400, res.StatusCode, body)
	res, _ = callOne(t, s, "GET", "/v1/passthrough/x", DefaultSecret, "", map[string]string{
		"X-One-Connection-Key": c.Key, "X-One-Action-Id": "not-an-action"})
	if res.StatusCode != 404 {
		t.Fatalf("unknown action: %d", res.StatusCode)
	}
	res, echo := callOne(t, s, "POST", "/v1/passthrough/chat.postMessage", DefaultSecret, "hi", map[string]string{
		"X-One-Connection-Key": c.Key, "X-One-Action-Id": "conn_mod_def::send", "Authorization": "Bearer app"})
	if res.StatusCode != 200 || res.Header.Get("X-One-Passthrough-Content-Type") != "application/json; charset=utf-8" ||
		res.Header.Get("X-One-Passthrough-X-Request-Id") != "tp-2" || res.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
	for name := range res.Header {
		if strings.HasPrefix(name, "X-Pica-") {
			t.Fatalf("One answered with %s", name)
		}
	}
	headers := echo["headers"].(map[string]any)
	if headers["X-One-Secret"] != nil || headers["X-One-Connection-Key"] != nil ||
		headers["X-One-Action-Id"] == nil || headers["Authorization"] == nil {
		t.Fatalf("the third party got %v", headers)
	}
	// Every request is recorded with all its headers.
	last := s.Requests()[len(s.Requests())-1]
	if last.Endpoint != EndpointPassthrough || last.Header.Get("X-One-Secret") != DefaultSecret ||
		last.Header.Get("X-One-Connection-Key") != c.Key || string(last.Body) != "hi" {
		t.Fatalf("recorded %+v", last)
	}
}

func TestThirdPartyStatusByPath(t *testing.T) {
	s := New(Options{})
	c := s.AddConnection("alice", "user", "gmail")
	key := map[string]string{"X-Pica-Connection-Key": c.Key}
	res, echo := call(t, s, "GET", "/v1/passthrough/status/401", DefaultSecret, "", key)
	if res.StatusCode != 401 || res.Header.Get("X-Pica-Passthrough-Www-Authenticate") == "" ||
		res.Header.Get("X-Pica-Passthrough-Content-Type") == "" || echo["path"] != "/status/401" {
		t.Fatalf("%d %v %v", res.StatusCode, res.Header, echo)
	}
	if res, _ := call(t, s, "GET", "/v1/passthrough/status/503/more", DefaultSecret, "", key); res.StatusCode != 503 {
		t.Fatalf("/status/503/more: %d", res.StatusCode)
	}
	if res, _ := call(t, s, "GET", "/v1/passthrough/x?__status=403", DefaultSecret, "", key); res.StatusCode != 403 {
		t.Fatalf("__status=403: %d", res.StatusCode)
	}
	if res, _ := call(t, s, "GET", "/v1/passthrough/status/abc", DefaultSecret, "", key); res.StatusCode != 200 {
		t.Fatalf("/status/abc: %d", res.StatusCode)
	}
}
