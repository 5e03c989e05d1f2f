//go:build external

package caddyauthkit

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// The demo's addresses in the browser test: Caddyfile.example with its ports
// moved (8080 → 9080, 8081 → 9081).
const (
	demoApp     = "http://localhost:9080"
	demoSandbox = "http://localhost:9081"
)

// demoConfig is Caddyfile.example as a test runs it: the global options
// caddytest needs, the ports moved, and then the given replacements. Each
// replacement must apply, so the test follows the example rather than
// silently testing something else.
func demoConfig(t *testing.T, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	config := string(b)
	replace = append([]string{
		"\tpersist_config off\n",
		"\tpersist_config off\n" + testGlobals,
		":8080", ":9080",
		":8081", ":9081",
	}, replace...)
	for i := 0; i < len(replace); i += 2 {
		if !strings.Contains(config, replace[i]) {
			t.Fatalf("Caddyfile.example no longer contains %q", replace[i])
		}
		config = strings.ReplaceAll(config, replace[i], replace[i+1])
	}
	return config
}

// browserOutcome is what testdata/node/browser.mjs saw.
type browserOutcome struct {
	Done     bool     `json:"done"`
	Failure  string   `json:"failure"`
	Steps    []string `json:"steps"`
	Payloads []struct {
		Origin  string        `json:"origin"`
		JSON    string        `json:"json"`
		Payload widgetPayload `json:"payload"`
	} `json:"payloads"`
	PageErrors     []string `json:"pageErrors"`
	ConsoleErrors  []string `json:"consoleErrors"`
	FailedRequests []string `json:"failedRequests"`
	// IframeFailedRequests are the vendor iframe's failed calls to the app.
	IframeFailedRequests []string `json:"iframeFailedRequests"`
	Responses            []struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		Status int    `json:"status"`
	} `json:"responses"`
	Texts struct {
		Who               string   `json:"who"`
		Status            string   `json:"status"`
		Call              string   `json:"call"`
		CallStatus        int      `json:"callStatus"`
		Connections       []string `json:"connections"`
		ConsentOrigin     string   `json:"consentOrigin"`
		FinalURL          string   `json:"finalURL"`
		AfterEscape       string   `json:"afterEscape"`
		AfterClose        string   `json:"afterClose"`
		Reconnect         string   `json:"reconnect"`
		OfferedConnectors []string `json:"offeredConnectors"`
		Foreign           string   `json:"foreign"`
		SignedOut         string   `json:"signedOut"`
		Iframes           int      `json:"iframes"`
		FailureStatus     string   `json:"failureStatus"`
	} `json:"texts"`
}

// widgetPayload is what the widget put in the iframe's ?data=.
type widgetPayload struct {
	LinkTokenEndpoint  string         `json:"linkTokenEndpoint"`
	LinkHeaders        map[string]any `json:"linkHeaders"`
	SelectedConnection string         `json:"selectedConnection"`
	Capabilities       *struct {
		OAuthRedirect bool `json:"oauthRedirect"`
	} `json:"capabilities"`
}

// runBrowser runs one scenario of browser.mjs against the app at app.
func runBrowser(t *testing.T, scenario, app string) browserOutcome {
	t.Helper()
	artifacts, err := filepath.Abs("testdata/artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "testdata/node/browser.mjs", scenario, app, artifacts)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser run failed: %v\n%s", err, out)
	}
	var o browserOutcome
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("browser output: %v: %s", err, out)
	}
	if !o.Done {
		t.Fatalf("%s stopped at %s (the page said %q)\npage errors: %v\nconsole: %v\nresponses: %+v",
			scenario, o.Failure, o.Texts.FailureStatus, o.PageErrors, o.ConsoleErrors, o.Responses)
	}
	if len(o.PageErrors) > 0 {
		t.Errorf("script errors on the page: %v", o.PageErrors)
	}
	// The console shows no error but the browser's note of an answer the
	// page asked for and shows (a 401, 403 or 409 the scenario provokes,
	// judged by failedResponses), and the foreign iframe's CORS refusal.
	for _, msg := range o.ConsoleErrors {
		if !o.answeredBadly(msg, app) && scenario != "foreign" {
			t.Errorf("console error: %s", msg)
		}
	}
	if len(o.FailedRequests) > 0 {
		t.Errorf("same-origin requests failed: %v", o.FailedRequests)
	}
	if len(o.IframeFailedRequests) > 0 && scenario != "foreign" {
		t.Errorf("the iframe's requests to the app failed: %v", o.IframeFailedRequests)
	}
	return o
}

// answeredBadly: msg is Chrome's console note of a failed answer from the
// app, one the page got (and the test sees in Responses).
func (o browserOutcome) answeredBadly(msg, app string) bool {
	rest, ok := strings.CutPrefix(msg, "Failed to load resource: the server responded with a status of ")
	if !ok {
		return false
	}
	for _, r := range o.Responses {
		if strings.HasPrefix(rest, strconv.Itoa(r.Status)+" ") && strings.Contains(rest, "("+app+r.Path) {
			return true
		}
	}
	return false
}

// failedResponses lists the same-origin answers of 400 and above, but for
// those expected.
func (o browserOutcome) failedResponses(expected ...string) []string {
	var failed []string
	for _, r := range o.Responses {
		what := r.Method + " " + r.Path
		if r.Status >= 400 && !slices.Contains(expected, what) {
			failed = append(failed, what+" "+http.StatusText(r.Status))
		}
	}
	return failed
}

func (o browserOutcome) answered(method, path string, status int) bool {
	for _, r := range o.Responses {
		if r.Method == method && r.Path == path && r.Status == status {
			return true
		}
	}
	return false
}

// checkPayloads: every iframe got a fresh ticket and nothing else that
// stands for the user: no Authorization, Cookie or basic credential.
func checkPayloads(t *testing.T, o browserOutcome, tokenURL string, opens int) {
	t.Helper()
	if len(o.Payloads) != opens {
		t.Fatalf("the widget opened the iframe %d times, want %d", len(o.Payloads), opens)
	}
	seen := map[any]bool{}
	for _, p := range o.Payloads {
		if p.Origin != demoSandbox {
			t.Errorf("iframe on %s, want the sandbox's %s", p.Origin, demoSandbox)
		}
		if p.Payload.LinkTokenEndpoint != tokenURL {
			t.Errorf("token URL %q, want %q", p.Payload.LinkTokenEndpoint, tokenURL)
		}
		ticket, ok := p.Payload.LinkHeaders["X-AuthKit-Ticket"].(string)
		if len(p.Payload.LinkHeaders) != 1 || !ok || len(ticket) < 40 {
			t.Errorf("iframe headers %v, want only X-AuthKit-Ticket", p.Payload.LinkHeaders)
		}
		if seen[ticket] {
			t.Errorf("a ticket was used for two opens: the page must fetch a fresh one")
		}
		seen[ticket] = true
		lower := strings.ToLower(p.JSON)
		for _, secret := range []string{"authorization", "cookie", "basic ", "demo:demo", strings.ToLower(base64.StdEncoding.EncodeToString([]byte("demo:demo")))} {
			if strings.Contains(lower, secret) {
				t.Errorf("the iframe URL carries %q: %s", secret, p.JSON)
			}
		}
	}
}

// checkConnected: the modal closed itself, the page says what was connected,
// lists it, and called passthrough keyless with success.
func checkConnected(t *testing.T, o browserOutcome, prefix, name, platform string) {
	t.Helper()
	if o.Texts.Who != "Signed in as demo." {
		t.Errorf("the page says %q", o.Texts.Who)
	}
	if o.Texts.Status != "Connected "+name+"." {
		t.Errorf("status %q, want Connected %s.", o.Texts.Status, name)
	}
	if !slices.Contains(o.Texts.Connections, platform) {
		t.Errorf("connections listed: %v, want %s among them", o.Texts.Connections, platform)
	}
	if o.Texts.CallStatus != http.StatusOK || !strings.Contains(o.Texts.Call, name+" answered 200") ||
		!strings.Contains(o.Texts.Call, "did not reach it") {
		t.Errorf("keyless passthrough: %d %q", o.Texts.CallStatus, o.Texts.Call)
	}
	// The iframe's token POST carries X-AuthKit-Ticket, so the browser sent
	// it only after a successful preflight (which Chromium does not report).
	if !o.answered("POST", prefix+"/ticket", http.StatusOK) || !o.answered("POST", prefix+"/token", http.StatusOK) {
		t.Errorf("ticket and token not both answered: %+v", o.Responses)
	}
	if failed := o.failedResponses(); len(failed) > 0 {
		t.Errorf("same-origin requests answered with errors in the happy path: %v", failed)
	}
}

// sandboxTokenCalls counts the token calls the sandbox received.
func sandboxTokenCalls(t *testing.T) int {
	t.Helper()
	res, err := http.Get(demoSandbox + "/sandbox/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var requests []sandbox.Request
	if err := json.NewDecoder(res.Body).Decode(&requests); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range requests {
		if r.Endpoint == sandbox.EndpointToken {
			n++
		}
	}
	return n
}

func needBrowser(t *testing.T) {
	t.Helper()
	for _, need := range []string{"/usr/bin/chromium", "testdata/node/node_modules/playwright-core",
		"demo/node_modules/@withone/auth", "demo/node_modules/@picahq/authkit"} {
		if _, err := os.Stat(need); err != nil {
			t.Fatalf("%s is missing: run ./scripts/test, which installs Chromium and the Node modules", need)
		}
	}
}

// TestBrowserDemo runs Caddyfile.example and clicks through the demo page in
// Chromium with the real @withone/auth and @picahq/authkit.
func TestBrowserDemo(t *testing.T) {
	needBrowser(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(demoConfig(t), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}

	t.Run("sign-in layer", func(t *testing.T) {
		for _, c := range []struct {
			cookie, authorization string
			status                int
		}{
			{"", "", http.StatusUnauthorized},
			{"", "Basic " + base64.StdEncoding.EncodeToString([]byte("demo:demo")), http.StatusUnauthorized},
			{base64.StdEncoding.EncodeToString([]byte("demo:wrong")), "", http.StatusUnauthorized},
			{base64.StdEncoding.EncodeToString([]byte("demo:demo")), "", http.StatusOK},
		} {
			req, _ := http.NewRequest("GET", demoApp+"/whoami", nil)
			if c.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "demo_auth", Value: c.cookie})
			}
			if c.authorization != "" {
				req.Header.Set("Authorization", c.authorization)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			// Never a challenge: the browser would open its own dialog.
			if res.StatusCode != c.status || res.Header.Get("WWW-Authenticate") != "" ||
				(c.status == http.StatusOK && string(body) != "demo") {
				t.Errorf("cookie %q, Authorization %q: %d %q, WWW-Authenticate %q", c.cookie, c.authorization, res.StatusCode, body, res.Header.Get("WWW-Authenticate"))
			}
		}
	})

	t.Run("one same tab", func(t *testing.T) {
		o := runBrowser(t, "one-same", demoApp)
		// Opened once, and reopened by the widget to check the OAuth state.
		checkPayloads(t, o, demoApp+"/authkit/token", 2)
		if c := o.Payloads[0].Payload.Capabilities; c == nil || !c.OAuthRedirect {
			t.Errorf("authWindow same: capabilities %+v", c)
		}
		if o.Texts.ConsentOrigin != demoSandbox || strings.Contains(o.Texts.FinalURL, "one_auth_state") {
			t.Errorf("consent on %q, back at %q", o.Texts.ConsentOrigin, o.Texts.FinalURL)
		}
		checkConnected(t, o, "/authkit", "Gmail", "gmail")
	})

	t.Run("one popup from 127.0.0.1", func(t *testing.T) {
		app := strings.Replace(demoApp, "localhost", "127.0.0.1", 1)
		o := runBrowser(t, "one-popup", app)
		checkPayloads(t, o, app+"/authkit/token", 1)
		if c := o.Payloads[0].Payload.Capabilities; c == nil || c.OAuthRedirect {
			t.Errorf("authWindow popup: capabilities %+v", c)
		}
		checkConnected(t, o, "/authkit", "Slack", "slack")
	})

	t.Run("pica", func(t *testing.T) {
		o := runBrowser(t, "pica", demoApp)
		checkPayloads(t, o, demoApp+"/pica/token", 1)
		if o.Payloads[0].Payload.Capabilities != nil {
			t.Errorf("@picahq/authkit sent capabilities: %s", o.Payloads[0].JSON)
		}
		// A second Gmail: the page names the new one by id, so no 409.
		checkConnected(t, o, "/pica", "Gmail", "gmail")
	})

	t.Run("cancel", func(t *testing.T) {
		o := runBrowser(t, "cancel", demoApp)
		checkPayloads(t, o, demoApp+"/authkit/token", 2)
		for how, said := range map[string]string{"Escape": o.Texts.AfterEscape, "the close button": o.Texts.AfterClose} {
			if said != "Closed without connecting anything." {
				t.Errorf("after %s the page says %q", how, said)
			}
		}
		if failed := o.failedResponses(); len(failed) > 0 {
			t.Errorf("errors: %v", failed)
		}
	})

	t.Run("reconnect", func(t *testing.T) {
		o := runBrowser(t, "reconnect", demoApp)
		// Gmail by platform may name two connections by now (409, then the
		// page calls the newest by id); either way Gmail answers 401 itself.
		if !strings.Contains(o.Texts.Call, "Calling Gmail (GET /status/401) failed: 401 (Gmail answered this).") ||
			!strings.Contains(o.Texts.Reconnect, "Reconnect Gmail") {
			t.Errorf("after a third-party 401: call %q, reconnect %q", o.Texts.Call, o.Texts.Reconnect)
		}
		checkPayloads(t, o, demoApp+"/authkit/token", 1)
		if p := o.Payloads[0].Payload; p.SelectedConnection != "Gmail" || len(o.Texts.OfferedConnectors) != 1 || o.Texts.OfferedConnectors[0] != "Gmail" {
			t.Errorf("reconnect opened %q, offering %v", p.SelectedConnection, o.Texts.OfferedConnectors)
		}
		if o.Texts.AfterClose != "Closed without connecting anything." {
			t.Errorf("after closing: %q", o.Texts.AfterClose)
		}
		// HubSpot is someone else's: refused, and said so.
		if !strings.Contains(o.Texts.Foreign, "Calling HubSpot (GET /users/me) failed: 404") {
			t.Errorf("someone else's connection: %q", o.Texts.Foreign)
		}
		if failed := o.failedResponses("GET /authkit/passthrough/status/401", "GET /authkit/passthrough/users/me"); len(failed) > 0 {
			t.Errorf("unexpected errors: %v", failed)
		}
	})

	t.Run("signed out", func(t *testing.T) {
		before := sandboxTokenCalls(t)
		o := runBrowser(t, "signed-out", demoApp)
		if o.Texts.SignedOut != "Signed out." {
			t.Errorf("after signing out: %q", o.Texts.SignedOut)
		}
		if !strings.Contains(o.Texts.Status, "Getting a ticket failed: 401") || !strings.Contains(o.Texts.Status, "Not signed in") || o.Texts.Iframes != 0 {
			t.Errorf("connect when signed out: %q, %d iframes", o.Texts.Status, o.Texts.Iframes)
		}
		if n := sandboxTokenCalls(t); n != before || len(o.Payloads) != 0 {
			t.Errorf("signed out, yet %d token calls reached the vendor and %d iframes opened", n-before, len(o.Payloads))
		}
		if failed := o.failedResponses("GET /whoami", "POST /authkit/ticket"); len(failed) > 0 {
			t.Errorf("unexpected errors: %v", failed)
		}
	})

}

// TestBrowserDemoForeignIframe serves the vendor's iframe on an origin
// outside cors_origins (127.0.0.1 instead of localhost): the browser
// withholds the token from it, and the page says why.
func TestBrowserDemoForeignIframe(t *testing.T) {
	needBrowser(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(demoConfig(t, `"iframe": "http://localhost:9081/iframe/"`, `"iframe": "http://127.0.0.1:9081/iframe/"`), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	o := runBrowser(t, "foreign", demoApp)
	if !strings.Contains(o.Texts.Status, "The widget reported an error: The token request failed") {
		t.Errorf("the page says %q", o.Texts.Status)
	}
	if len(o.Payloads) != 1 || o.Payloads[0].Origin != "http://127.0.0.1:9081" {
		t.Errorf("iframes opened: %+v", o.Payloads)
	}
	if len(o.IframeFailedRequests) != 1 || !strings.HasPrefix(o.IframeFailedRequests[0], "POST /authkit/token") {
		t.Errorf("the browser did not refuse the token call: %v", o.IframeFailedRequests)
	}
	if n := sandboxTokenCalls(t); n != 0 {
		t.Errorf("%d token calls reached the vendor for a foreign iframe", n)
	}
	if failed := o.failedResponses(); len(failed) > 0 {
		t.Errorf("errors: %v", failed)
	}
}
