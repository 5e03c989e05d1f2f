package sandbox

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// linkSession gets a One token for identity and returns its requestId.
func linkSession(t *testing.T, s *Server, identity string) int64 {
	t.Helper()
	_, token := callOne(t, s, "POST", "/v1/authkit/token?page=1&limit=100", DefaultSecret, `{"identity":"`+identity+`","identityType":"team"}`, nil)
	return int64(token["requestId"].(float64))
}

// startFlow starts an OAuth flow through the control route, as the iframe does.
func startFlow(t *testing.T, s *Server, requestID string, connectionDefID string) (state, consent string) {
	t.Helper()
	res, body := send(t, s, "POST", "/sandbox/oauth/start", `{"requestId":`+requestID+`,"connectionDefId":`+connectionDefID+`}`, nil)
	if res.StatusCode != 201 || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("start: %d %v", res.StatusCode, body)
	}
	state, consent = body["state"].(string), body["url"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(state) || consent != "/sandbox/oauth/authorize?state="+state {
		t.Fatalf("start answered %v", body)
	}
	return state, consent
}

// withReturn is the state as @withone/auth rewrites it before navigating.
func withReturn(state, ret string) string {
	return state + "~" + base64.RawURLEncoding.EncodeToString([]byte(ret))
}

func decide(s *Server, rawState, decision string) *http.Response {
	form := url.Values{"state": {rawState}, "decision": {decision}}
	req := httptest.NewRequest("POST", "/sandbox/oauth/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w.Result()
}

func TestOAuthRedirectFlowConnectsTheLinkSessionsIdentity(t *testing.T) {
	s := New(Options{Provider: ProviderOne})
	rid := linkSession(t, s, "acme")
	state, consent := startFlow(t, s, itoa(rid), "2")
	if res, body := send(t, s, "GET", "/sandbox/oauth/state/"+state, "", nil); res.StatusCode != 200 || body["status"] != OAuthPending || body["platform"] != "slack" {
		t.Fatalf("before consent: %d %v", res.StatusCode, body)
	}

	ret := "http://app.test/settings?tab=apps#top"
	raw := withReturn(state, ret)
	page := httptest.NewRecorder()
	s.ServeHTTP(page, httptest.NewRequest("GET", consent+url.QueryEscape(strings.TrimPrefix(raw, state)), nil))
	html := page.Body.String()
	if page.Code != 200 || !strings.Contains(html, "Slack") || !strings.Contains(html, `value="`+raw+`"`) || !strings.Contains(html, "acme") {
		t.Fatalf("consent page %d:\n%s", page.Code, html)
	}
	if len(s.Connections()) != 0 {
		t.Fatal("showing the consent page connected")
	}

	res := decide(s, raw, "allow")
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != 303 || loc.Host != "app.test" || loc.Path != "/settings" || loc.Fragment != "top" ||
		loc.Query().Get("tab") != "apps" || loc.Query().Get("one_auth_state") != state || loc.Query().Has("one_auth_error") {
		t.Fatalf("callback: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	res2, body := send(t, s, "GET", "/sandbox/oauth/state/"+state, "", nil)
	conn, _ := body["connection"].(map[string]any)
	if res2.Header.Get("Access-Control-Allow-Origin") != "*" || body["status"] != OAuthSuccess || conn == nil ||
		conn["identity"] != "acme" || conn["identityType"] != "team" || conn["platform"] != "slack" {
		t.Fatalf("after consent: %v", body)
	}
	if vault := s.Connections(); len(vault) != 1 || vault[0].Key != conn["key"] {
		t.Fatalf("vault %v", vault)
	}
	if res := decide(s, raw, "allow"); res.StatusCode != 409 || len(s.Connections()) != 1 {
		t.Fatalf("second consent: %d, %d connections", res.StatusCode, len(s.Connections()))
	}
}

func TestOAuthDenyAndPopupAndBadStates(t *testing.T) {
	s := New(Options{Provider: ProviderOne})
	rid := itoa(linkSession(t, s, "bob"))
	denied, _ := startFlow(t, s, rid, "1")
	res := decide(s, withReturn(denied, "https://app.test/"), "deny")
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != 303 || loc.Query().Get("one_auth_state") != denied || loc.Query().Get("one_auth_error") != "access_denied" {
		t.Fatalf("deny: %d %v", res.StatusCode, loc)
	}
	if r, ok := s.OAuthStatus(denied); !ok || r.Status != OAuthFailed || r.Error != "access_denied" || len(s.Connections()) != 0 {
		t.Fatalf("denied flow: %+v", r)
	}

	// Popup mode: no return URL, the page says so and closes itself.
	popup, _ := startFlow(t, s, rid, "3")
	res = decide(s, popup, "allow")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(body), "Connected.") || !strings.Contains(string(body), "window.close()") {
		t.Fatalf("popup consent: %d %s", res.StatusCode, body)
	}
	if r, _ := s.OAuthStatus(popup); r.Status != OAuthSuccess || r.Connection.Identity != "bob" {
		t.Fatalf("popup flow: %+v", r)
	}

	other, _ := startFlow(t, s, rid, "4")
	for _, raw := range []string{"f00", withReturn(other, "javascript:alert(1)"), other + "~%%%"} {
		if res := decide(s, raw, "allow"); res.StatusCode != 400 {
			t.Fatalf("state %q: %d", raw, res.StatusCode)
		}
	}
	if r, _ := s.OAuthStatus(other); r.Status != OAuthPending {
		t.Fatalf("a refused callback changed the flow: %+v", r)
	}
	if res, _ := send(t, s, "GET", "/sandbox/oauth/state/f00", "", nil); res.StatusCode != 404 {
		t.Fatalf("unknown state: %d", res.StatusCode)
	}
	if res, _ := send(t, s, "POST", "/sandbox/oauth/start", `{"requestId":999,"connectionDefId":1}`, nil); res.StatusCode != 404 {
		t.Fatalf("unknown link session: %d", res.StatusCode)
	}
	if res, _ := send(t, s, "POST", "/sandbox/oauth/start", `{"requestId":`+rid+`,"connectionDefId":31}`, nil); res.StatusCode != 404 {
		t.Fatalf("connector not in AuthKit: %d", res.StatusCode)
	}
}

func TestIframeIsServed(t *testing.T) {
	s := New(Options{})
	for _, path := range []string{"/iframe/", "/iframe", "/iframe.html"} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", path+"?data=e30", nil))
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
			!strings.Contains(w.Body.String(), "OAUTH_REDIRECT") {
			t.Fatalf("%s: %d %v", path, w.Code, w.Header())
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("HEAD", "/iframe/", nil))
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.Itoa(len(iframePage)) {
		t.Fatalf("HEAD /iframe/: %d, %d bytes, %v", w.Code, w.Body.Len(), w.Header())
	}
	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/iframe/secret.txt", nil))
	if w.Code != 404 {
		t.Fatalf("/iframe/secret.txt: %d", w.Code)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
