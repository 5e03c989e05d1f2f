package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// call sends a request with Pica's secret header, if secret is set.
func call(t *testing.T, s *Server, method, target, secret, body string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	if secret != "" {
		header = withHeader(header, "X-Pica-Secret", secret)
	}
	return send(t, s, method, target, body, header)
}

// callOne sends a request with One's secret header, if secret is set.
func callOne(t *testing.T, s *Server, method, target, secret, body string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	if secret != "" {
		header = withHeader(header, "X-One-Secret", secret)
	}
	return send(t, s, method, target, body, header)
}

func withHeader(h map[string]string, name, value string) map[string]string {
	out := map[string]string{name: value}
	for k, v := range h {
		out[k] = v
	}
	return out
}

func send(t *testing.T, s *Server, method, target, body string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	res := w.Result()
	raw, _ := io.ReadAll(res.Body)
	var v map[string]any
	_ = json.Unmarshal(raw, &v)
	return res, v
}

func TestWrongSecretGetsPicasEnvelope(t *testing.T) {
	s := New(Options{})
	res, body := call(t, s, "GET", "/v1/users/flags", "sk_test_1_wrong", "", nil)
	if res.StatusCode != 401 || body["type"] != "Unauthorized" || body["code"] != 2010.0 ||
		body["key"] != "err::application::unauthorized" || body["message"] != "You are not authorized to access this resource" {
		t.Fatalf("%d %v", res.StatusCode, body)
	}
	// The right secret twice is not one secret.
	req := httptest.NewRequest("GET", "/v1/users/flags", nil)
	req.Header["X-Pica-Secret"] = []string{DefaultSecret, DefaultSecret}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != 401 {
		t.Fatalf("two secret headers: %d", w.Code)
	}
}

func TestAuthKitPagesAndBothIdentityTypeSpellings(t *testing.T) {
	s := New(Options{Connectors: 5})
	_, page := call(t, s, "POST", "/v1/authkit?limit=2&page=3", DefaultSecret, `{"identity":"a","identity_type":"team"}`, nil)
	if page["total"] != 5.0 || page["pages"] != 3.0 || page["page"] != 3.0 || len(page["rows"].([]any)) != 1 {
		t.Fatalf("page 3: %v", page)
	}
	if c, ok := s.Connect(int64(page["requestId"].(float64)), 1); !ok || c.Identity != "a" || c.IdentityType != "team" {
		t.Fatalf("identity_type not taken: %+v", c)
	}
	res, _ := call(t, s, "POST", "/v1/authkit", DefaultSecret, `{"identity":"a","identityType":"admin"}`, nil)
	if res.StatusCode != 400 {
		t.Fatalf("bad identity type: %d", res.StatusCode)
	}
}

func TestVaultFiltersAndDeletes(t *testing.T) {
	s := New(Options{})
	a := s.AddConnection("user 1:x", "user", "gmail")
	s.AddConnection("user 1:x", "team", "gmail")
	if !strings.HasSuffix(a.Key, "|user-1-x") || !strings.HasPrefix(a.Key, "test::gmail::default::") {
		t.Fatalf("key %q is not shaped as Pica's", a.Key)
	}
	_, list := call(t, s, "GET", "/v1/vault/connections?identity=user+1%3Ax&identityType=user&key="+a.Key, DefaultSecret, "", nil)
	if list["total"] != 1.0 {
		t.Fatalf("filtered list: %v", list)
	}
	if res, _ := call(t, s, "DELETE", "/v1/vault/connections/"+a.ID, DefaultSecret, "", nil); res.StatusCode != 200 {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if res, _ := call(t, s, "GET", "/v1/vault/connections/"+a.ID, DefaultSecret, "", nil); res.StatusCode != 404 {
		t.Fatalf("deleted connection still answers %d", res.StatusCode)
	}
}

func TestPassthroughAsPicaAnswersIt(t *testing.T) {
	s := New(Options{})
	c := s.AddConnection("alice", "user", "slack")
	res, _ := call(t, s, "GET", "/v1/passthrough/x", DefaultSecret, "", nil)
	if res.StatusCode != 400 {
		t.Fatalf("no key: %d", res.StatusCode)
	}
	res, _ = call(t, s, "GET", "/v1/passthrough/x", DefaultSecret, "", map[string]string{"X-Pica-Connection-Key": "live::slack::default::00|alice"})
	if res.StatusCode != 404 {
		t.Fatalf("key of the other environment: %d", res.StatusCode)
	}
	res, body := call(t, s, "GET", "/v1/passthrough/x", DefaultSecret, "", map[string]string{"X-Pica-Connection-Key": c.Key + "0"})
	if res.StatusCode != 404 || body["message"] != "Value not found" {
		t.Fatalf("key not in the vault: %d %v", res.StatusCode, body)
	}
	res, echo := call(t, s, "POST", "/v1/passthrough/chat.postMessage?a=1&a=2", DefaultSecret, "hi",
		map[string]string{"X-Pica-Connection-Key": c.Key, "Cookie": "c=1"})
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/octet-stream" ||
		res.Header.Get("X-Pica-Passthrough-Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
	headers := echo["headers"].(map[string]any)
	if echo["path"] != "/chat.postMessage" || echo["rawQuery"] != "a=1&a=2" || echo["body"] != "hi" ||
		headers["X-Pica-Secret"] != nil || headers["Cookie"] == nil {
		t.Fatalf("echo %v", echo)
	}
}

func TestListsPageAndFilter(t *testing.T) {
	s := New(Options{Connectors: 5})
	s.AddConnection("alice", "user", "gmail")
	s.AddConnection("alice", "user", "slack")
	second := s.AddConnection("alice", "user", "gmail")
	_, list := call(t, s, "GET", "/v1/vault/connections?platform=gmail&limit=1&page=2", DefaultSecret, "", nil)
	rows, _ := list["rows"].([]any)
	if list["total"] != 2.0 || list["pages"] != 2.0 || list["page"] != 2.0 || len(rows) != 1 || rows[0].(map[string]any)["key"] != second.Key {
		t.Fatalf("gmail page 2: %v", list)
	}
	// Past the last page, and an empty vault, are empty arrays, not null.
	for q, total := range map[string]float64{"limit=2&page=3": 3, "limit=9223372036854775807&page=2": 3, "identity=nobody": 0} {
		_, past := call(t, s, "GET", "/v1/vault/connections?"+q, DefaultSecret, "", nil)
		if rows, ok := past["rows"].([]any); !ok || len(rows) != 0 || past["total"] != total {
			t.Fatalf("no rows (%s): %v", q, past)
		}
	}
	for q, message := range map[string]string{"page=0": "Invalid page", "limit=x": "Invalid limit", "page=-1&limit=0": "Invalid limit"} {
		res, body := call(t, s, "GET", "/v1/vault/connections?"+q, DefaultSecret, "", nil)
		if res.StatusCode != 400 || body["message"] != message {
			t.Fatalf("%s: %d %v", q, res.StatusCode, body)
		}
	}
	_, enabled := call(t, s, "GET", "/v1/available-connectors?authkit=true&limit=2&page=3", DefaultSecret, "", nil)
	rows, _ = enabled["rows"].([]any)
	if enabled["total"] != 5.0 || enabled["pages"] != 3.0 || len(rows) != 1 || rows[0].(map[string]any)["id"] != 5.0 {
		t.Fatalf("AuthKit connectors page 3: %v", enabled)
	}
	if _, all := call(t, s, "GET", "/v1/available-connectors", DefaultSecret, "", nil); all["total"] != 8.0 {
		t.Fatalf("all connectors: %v", all)
	}
}

func TestFlagsAndEnvironmentFollowTheAccount(t *testing.T) {
	for _, white := range []bool{false, true} {
		_, flags := call(t, New(Options{WhiteLabel: white}), "GET", "/v1/users/flags", DefaultSecret, "", nil)
		if flags["authkitWhitelist"] != white {
			t.Fatalf("white label %v: flags %v", white, flags)
		}
	}
	live := "sk_live_1_sandbox0000000000000000"
	s := New(Options{Secret: live})
	c := s.AddConnection("alice", "user", "gmail")
	_, page := call(t, s, "POST", "/v1/authkit", live, `{}`, nil)
	row, _ := page["rows"].([]any)[0].(map[string]any)
	if !strings.HasPrefix(c.Key, "live::gmail::") || c.Environment != "live" || row["environment"] != "live" {
		t.Fatalf("live account: key %q, %s, token row %v", c.Key, c.Environment, row)
	}
}
