package caddyauthkit

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestPreflightIsAnsweredBeforeIdentity(t *testing.T) {
	g := startGateway(t, nil, "cors_headers X-Custom")
	preflight := func(path, origin string, extra map[string]string) response {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
		for k, v := range extra {
			h[k] = v
		}
		return g.do(call{method: "OPTIONS", url: appURL + path, header: h}) // no credentials, as browsers do
	}

	res := preflight("/authkit/token", "https://authkit.picaos.com", map[string]string{"Access-Control-Request-Private-Network": "true"})
	expect(t, res, http.StatusNoContent, "")
	for header, want := range map[string]string{
		"Access-Control-Allow-Origin":          "https://authkit.picaos.com",
		"Access-Control-Allow-Methods":         "POST, OPTIONS",
		"Access-Control-Allow-Headers":         "Content-Type, Authorization, X-Custom, X-AuthKit-Ticket",
		"Access-Control-Max-Age":               "7200",
		"Access-Control-Allow-Private-Network": "true",
		"Allow":                                "POST, OPTIONS",
	} {
		if got := res.Header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	if !containsValue(res.Header.Values("Vary"), "Origin") {
		t.Errorf("Vary %v lacks Origin", res.Header.Values("Vary"))
	}

	res = preflight("/authkit/passthrough/users/me", "http://app.test", nil)
	expect(t, res, http.StatusNoContent, "")
	if got := res.Header.Get("Access-Control-Allow-Methods"); got != "GET, POST, PUT, PATCH, DELETE, OPTIONS" {
		t.Errorf("passthrough methods %q", got)
	}

	// An origin that is not allowed gets no Access-Control-Allow-* at all.
	for _, origin := range []string{"https://evil.example", "https://authkit.picaos.com.evil.example", "null"} {
		res = preflight("/authkit/token", origin, map[string]string{"Access-Control-Request-Private-Network": "true"})
		for name := range res.Header {
			if len(name) > 21 && name[:21] == "Access-Control-Allow-" {
				t.Errorf("origin %s got %s", origin, name)
			}
		}
	}
	if n := len(g.pica.Requests()); n != 0 {
		t.Fatalf("preflight reached Pica %d times", n)
	}
}

// A `header` directive may edit authkit's answers in place; what it does to
// one answer must not reach the next, nor the routes' own methods.
func TestHeaderDirectiveEditsOnlyItsOwnAnswer(t *testing.T) {
	g := startGateway(t, nil, "")
	g.loadConfig(strings.Replace(g.config(""), "http://localhost:9080 {\n\tlog\n",
		"http://localhost:9080 {\n\tlog\n\theader >Allow OPTIONS \"OPTIONS, HEAD\"\n"+
			"\theader >Access-Control-Allow-Methods POST GET\n"+
			"\theader >Access-Control-Allow-Origin http https\n", 1))
	preflight := call{method: "OPTIONS", url: appURL + "/authkit/token", header: map[string]string{"Origin": "http://app.test"}}
	for i := range 3 {
		res := g.do(preflight)
		expect(t, res, http.StatusNoContent, "")
		for header, want := range map[string]string{
			"Allow":                        "POST, OPTIONS, HEAD",
			"Access-Control-Allow-Methods": "GET, OPTIONS",
			"Access-Control-Allow-Origin":  "https://app.test",
		} {
			if got := res.Header.Get(header); got != want {
				t.Errorf("preflight %d: %s %q, want %q", i, header, got, want)
			}
		}
	}
	// The token route still takes POST: its table was not edited.
	expect(t, g.as("alice", "POST", "/authkit/token", nil), http.StatusOK, "")
	if got := g.do(preflight).Header.Get("Access-Control-Allow-Origin"); got != "https://app.test" {
		t.Errorf("after a token answer, Allow-Origin %q", got)
	}
}

// Deleting a connection is preflighted with the headers the browser sends.
func TestPreflightOfEveryRouteNamesItsHeaders(t *testing.T) {
	g := startGateway(t, nil, "")
	for path, methods := range map[string]string{
		"/authkit/connections/" + g.alice.ID: "DELETE, OPTIONS",
		"/authkit/connections":               "GET, OPTIONS",
		"/authkit/connectors":                "GET, OPTIONS",
		"/authkit/ticket":                    "POST, OPTIONS",
	} {
		res := g.do(call{method: "OPTIONS", url: appURL + path, header: map[string]string{
			"Origin": "http://app.test", "Access-Control-Request-Method": "DELETE"}})
		expect(t, res, http.StatusNoContent, "")
		if got := res.Header.Get("Access-Control-Allow-Methods"); got != methods {
			t.Errorf("%s: methods %q, want %q", path, got, methods)
		}
		if got := res.Header.Get("Access-Control-Allow-Headers"); !strings.HasPrefix(got, "Content-Type, Authorization") {
			t.Errorf("%s: Allow-Headers %q", path, got)
		}
	}
}

func TestAnyOriginWhenConfigured(t *testing.T) {
	g := startGateway(t, nil, "cors_origins *")
	res := g.do(call{method: "OPTIONS", url: appURL + "/authkit/token", header: map[string]string{"Origin": "https://anything.example"}})
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Fatalf("Allow-Origin %q, want *", got)
	}
}

// containsValue reads a list header as HTTP does: values and comma lists.
func containsValue(values []string, want string) bool {
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			if strings.TrimSpace(item) == want {
				return true
			}
		}
	}
	return false
}

// TestCORSKeepsTheVaryOfHandlersBefore: a Vary set before authkit (a
// cache key of the site's own, Accept-Encoding by encode) stays, and
// authkit's names follow it, on an answer and on a preflight.
func TestCORSKeepsTheVaryOfHandlersBefore(t *testing.T) {
	p := newCORSPolicy([]string{"https://authkit.picaos.com"}, nil)
	h := http.Header{"Vary": {"Accept-Encoding"}}
	p.allowOrigin(h, "https://authkit.picaos.com")
	if got := h["Vary"]; !slices.Equal(got, []string{"Accept-Encoding", "Origin"}) {
		t.Fatalf("answer Vary %q", got)
	}
	r := httptest.NewRequest("OPTIONS", "/authkit/token", nil)
	r.Header.Set("Origin", "https://authkit.picaos.com")
	w := discard{http.Header{"Vary": {"Accept-Encoding"}}}
	p.preflight(w, r, tokenRoute)
	if got := w.h["Vary"]; !slices.Equal(got, []string{"Accept-Encoding", preflightVary}) {
		t.Fatalf("preflight Vary %q", got)
	}
}

func BenchmarkPreflight(b *testing.B) {
	p := newCORSPolicy([]string{"https://authkit.picaos.com"}, []string{"X-Custom"})
	r := httptest.NewRequest("OPTIONS", "/authkit/token", nil)
	r.Header.Set("Origin", "https://authkit.picaos.com")
	r.Header.Set("Access-Control-Request-Method", "POST")
	b.ReportAllocs()
	for b.Loop() {
		p.preflight(discard{http.Header{}}, r, tokenRoute)
	}
}

type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}
