package sandbox

import (
	"regexp"
	"testing"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// checkOneError asserts One's V2 envelope and returns its correlationId.
func checkOneError(t *testing.T, status int, gotStatus int, body map[string]any) string {
	t.Helper()
	id, _ := body["correlationId"].(string)
	if gotStatus != status || body["status"] != float64(status) || body["code"] != 2001.0 ||
		body["key"] != "http_error" || body["type"] != "http_error" || body["message"] == "" ||
		!uuidPattern.MatchString(id) || body["meta"] != nil {
		t.Fatalf("not One's %d envelope: %d %v", status, gotStatus, body)
	}
	return id
}

func TestOneSpeaksItsDialect(t *testing.T) {
	s := New(Options{Provider: ProviderOne, Connectors: 5})
	res, page := callOne(t, s, "POST", "/v1/authkit/token?page=2&limit=2", DefaultSecret, `{"identity":"a","identityType":"user"}`, nil)
	if res.StatusCode != 200 || page["total"] != 5.0 || page["pages"] != 3.0 || page["page"] != 2.0 || len(page["rows"].([]any)) != 2 {
		t.Fatalf("token page: %d %v", res.StatusCode, page)
	}
	if _, ok := page["isWhiteLabel"]; ok {
		t.Fatalf("One's token answer has isWhiteLabel: %v", page)
	}
	// Pica's paths do not exist under One.
	res, body := callOne(t, s, "POST", "/v1/authkit", DefaultSecret, `{}`, nil)
	checkOneError(t, 404, res.StatusCode, body)
	res, body = callOne(t, s, "GET", "/v1/users/flags", DefaultSecret, "", nil)
	checkOneError(t, 404, res.StatusCode, body)

	// Pica's secret header alone is no secret to One; each error gets its own id.
	res, body = call(t, s, "POST", "/v1/authkit/token", DefaultSecret, `{}`, nil)
	first := checkOneError(t, 401, res.StatusCode, body)
	if body["message"] != "Authentication required" {
		t.Fatalf("401 message %v", body["message"])
	}
	res, body = callOne(t, s, "POST", "/v1/authkit/token", "sk_test_1_wrong", `{}`, nil)
	if second := checkOneError(t, 401, res.StatusCode, body); second == first {
		t.Fatalf("correlationId %s repeated", first)
	}
	if got := s.Count(EndpointToken); got != 3 {
		t.Fatalf("Count(token) = %d, want 3", got)
	}
	if r := s.Requests()[0]; r.Endpoint != EndpointToken || r.Dialect != ProviderOne || r.RawQuery != "page=2&limit=2" {
		t.Fatalf("recorded %+v", r)
	}
}

func TestPicaRefusesOnesSecretInItsOwnEnvelope(t *testing.T) {
	s := New(Options{})
	res, body := callOne(t, s, "POST", "/v1/authkit", DefaultSecret, `{}`, nil)
	if res.StatusCode != 401 || body["type"] != "Unauthorized" || body["code"] != 2010.0 || body["correlationId"] != nil {
		t.Fatalf("%d %v", res.StatusCode, body)
	}
	if res, _ := call(t, s, "POST", "/v1/authkit/token", DefaultSecret, `{}`, nil); res.StatusCode != 404 {
		t.Fatalf("One's token path under Pica: %d", res.StatusCode)
	}
}

func TestBothDialectsAtOnce(t *testing.T) {
	s := New(Options{Provider: ProviderBoth})
	if res, body := call(t, s, "POST", "/v1/authkit", DefaultSecret, `{}`, nil); res.StatusCode != 200 || body["requestId"] != 1.0 {
		t.Fatalf("Pica token: %d %v", res.StatusCode, body)
	}
	if res, body := callOne(t, s, "POST", "/v1/authkit/token", DefaultSecret, `{}`, nil); res.StatusCode != 200 || body["requestId"] != 2.0 {
		t.Fatalf("One token: %d %v", res.StatusCode, body)
	}
	if res, _ := call(t, s, "GET", "/v1/users/flags", DefaultSecret, "", nil); res.StatusCode != 200 {
		t.Fatalf("Pica flags: %d", res.StatusCode)
	}
	res, body := callOne(t, s, "GET", "/v1/users/flags", DefaultSecret, "", nil)
	checkOneError(t, 404, res.StatusCode, body)
	// The secret header decides the dialect, also of the refusal.
	res, body = callOne(t, s, "GET", "/v1/vault/connections", "sk_test_1_wrong", "", nil)
	checkOneError(t, 401, res.StatusCode, body)
	res, body = call(t, s, "GET", "/v1/vault/connections", "sk_test_1_wrong", "", nil)
	if res.StatusCode != 401 || body["type"] != "Unauthorized" {
		t.Fatalf("Pica refusal: %d %v", res.StatusCode, body)
	}
	// The vault is the same whichever dialect asks.
	s.AddConnection("alice", "user", "gmail")
	_, pica := call(t, s, "GET", "/v1/vault/connections", DefaultSecret, "", nil)
	_, one := callOne(t, s, "GET", "/v1/vault/connections", DefaultSecret, "", nil)
	if pica["total"] != 1.0 || one["total"] != 1.0 {
		t.Fatalf("vault: pica %v, one %v", pica, one)
	}
	var dialects []string
	for _, r := range s.Requests() {
		dialects = append(dialects, r.Dialect)
	}
	want := []string{"pica", "one", "pica", "one", "one", "pica", "pica", "one"}
	if len(dialects) != len(want) {
		t.Fatalf("dialects %v", dialects)
	}
	for i := range want {
		if dialects[i] != want[i] {
			t.Fatalf("dialects %v, want %v", dialects, want)
		}
	}
	// Both secret headers: Pica's dialect, so Pica's flags exist.
	if res, _ := callOne(t, s, "GET", "/v1/users/flags", DefaultSecret, "", map[string]string{"X-Pica-Secret": DefaultSecret}); res.StatusCode != 200 {
		t.Fatalf("flags with both secret headers: %d", res.StatusCode)
	}
}

func TestUnknownProviderPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted provider \"pika\"")
		}
	}()
	New(Options{Provider: "pika"})
}
