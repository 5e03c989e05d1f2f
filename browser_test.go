package caddyauthkit

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// The app and two origins that serve the stand-in AuthKit iframe: only the
// first is in cors_origins.
const (
	browserAllowedIframe = "http://localhost:9082"
	browserOtherIframe   = "http://localhost:9083"
)

// browserConfig: the app (authentication on its API routes only, the page and
// the real @picahq/authkit public), and the iframe origins, which reach the
// sandbox as the hosted iframe reaches Pica.
const browserConfig = `{
	admin localhost:2999
	skip_install_trust
	http_port 9080
	https_port 9443
	grace_period 1ns
}

http://localhost:9080 {
	# So the iframe can read the auth layer's own 401 (README: troubleshooting).
	header /authkit/* Access-Control-Allow-Origin ` + browserAllowedIframe + `

	@authed {
		not method OPTIONS
		path /authkit/*
	}
	%[1]s

	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %[2]s
		cors_origins ` + browserAllowedIframe + `
		%[3]s
	}

	handle_path /vendor/* {
		root * testdata/node/node_modules/@picahq/authkit/dist
		file_server
	}
	handle {
		root * testdata/browser
		file_server
	}
}

http://localhost:9082, http://localhost:9083 {
	handle /sandbox/* {
		reverse_proxy %[4]s
	}
	handle {
		root * demo/iframe
		file_server
	}
}
`

// browserOutcome is what browser.mjs saw.
type browserOutcome struct {
	State   string `json:"state"`
	Failure string `json:"failure"`
	Result  struct {
		Events     []string `json:"events"`
		Error      string   `json:"error"`
		Connection struct {
			Key          string `json:"key"`
			Platform     string `json:"platform"`
			Identity     string `json:"identity"`
			IdentityType string `json:"identityType"`
		} `json:"connection"`
		Passthrough struct {
			Status      int    `json:"status"`
			ContentType string `json:"contentType"`
			Body        struct {
				Path string `json:"path"`
			} `json:"body"`
		} `json:"passthrough"`
		Connections struct {
			Status int `json:"status"`
			Body   struct {
				Rows []struct {
					Key      string `json:"key"`
					Identity string `json:"identity"`
				} `json:"rows"`
			} `json:"body"`
		} `json:"connections"`
	} `json:"result"`
	// Responses as the page saw them; CORS preflights are not among them.
	Responses []struct {
		Method string `json:"method"`
		URL    string `json:"url"`
		Status int    `json:"status"`
	} `json:"responses"`
	Console []string `json:"console"`
}

func (o browserOutcome) statusOf(method, path string) int {
	for _, r := range o.Responses {
		if r.Method == method && strings.Contains(r.URL, path) {
			return r.Status
		}
	}
	return 0
}

// runBrowser loads the app page in headless Chromium and clicks through AuthKit.
func runBrowser(t *testing.T, iframeOrigin, auth, expect, screenshot string) browserOutcome {
	t.Helper()
	for _, need := range []string{"/usr/bin/chromium", "testdata/node/node_modules/playwright-core", "testdata/node/node_modules/@picahq/authkit"} {
		if _, err := os.Stat(need); err != nil {
			t.Fatalf("%s is missing: run ./scripts/test, which installs Chromium and the Node modules", need)
		}
	}
	cmd := exec.Command("node", "testdata/node/browser.mjs", appURL, iframeOrigin, auth, expect, screenshot)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser run failed: %v\n%s", err, out)
	}
	var o browserOutcome
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("browser output: %v: %s", err, out)
	}
	if o.State == "stuck" {
		t.Fatalf("the flow got stuck: %s\nconsole: %v\nresponses: %+v", o.Failure, o.Console, o.Responses)
	}
	return o
}

func TestBrowserFlow(t *testing.T) {
	artifacts, err := filepath.Abs("testdata/artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	// forward_auth's service: a bearer token names the user.
	authService := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer alice-session" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-User", "alice")
		w.WriteHeader(http.StatusOK)
	}))
	defer authService.Close()

	for _, layer := range []struct {
		name, directive, options, signedIn string
	}{
		{"basic_auth", "basic_auth @authed {\n\t\talice " + aliceHash + "\n\t}", "",
			"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice"))},
		{"forward_auth", "forward_auth @authed " + strings.TrimPrefix(authService.URL, "http://") + " {\n\t\turi /verify\n\t\tcopy_headers X-User\n\t}",
			"identity {http.request.header.X-User}", "Bearer alice-session"},
	} {
		t.Run(layer.name, func(t *testing.T) {
			pica := sandbox.New(sandbox.Options{Secret: testSecret})
			upstream := httptest.NewServer(pica)
			defer upstream.Close()
			tester := caddytest.NewTester(t)
			tester.InitServer(fmt.Sprintf(browserConfig, layer.directive, upstream.URL, layer.options, strings.TrimPrefix(upstream.URL, "http://")), "caddyfile")
			if t.Failed() {
				t.FailNow()
			}

			screenshot := filepath.Join(artifacts, "connected-"+layer.name+".png")
			o := runBrowser(t, browserAllowedIframe, layer.signedIn, "connected", screenshot)
			r := o.Result
			if o.State != "connected" || r.Connection.Identity != "alice" || r.Connection.IdentityType != "user" {
				t.Fatalf("state %s, connection %+v, error %q", o.State, r.Connection, r.Error)
			}
			if o.statusOf("POST", "/authkit/token") != 200 {
				t.Fatalf("token POST answered %d", o.statusOf("POST", "/authkit/token"))
			}
			// The browser sent a real preflight (Playwright does not show it):
			// authkit answered it, before any identity.
			mustContain(t, scrapeMetrics(t), `caddy_authkit_requests_total{code="204",route="token"} 1`, "preflight")
			if r.Passthrough.Status != 200 || r.Passthrough.Body.Path != "/users/me" || !strings.HasPrefix(r.Passthrough.ContentType, "application/json") {
				t.Fatalf("passthrough from the page: %+v", r.Passthrough)
			}
			if r.Connections.Status != 200 || len(r.Connections.Body.Rows) != 1 || r.Connections.Body.Rows[0].Key != r.Connection.Key {
				t.Fatalf("connections from the page: %+v", r.Connections)
			}
			if info, err := os.Stat(screenshot); err != nil || info.Size() < 5000 {
				t.Fatalf("no screenshot of the connected state: %v", err)
			}

			// An iframe on an origin that is not allowed never gets a token.
			pica.ResetRequests()
			o = runBrowser(t, browserOtherIframe, layer.signedIn, "error", "")
			if o.State != "error" || len(o.Result.Events) != 1 || pica.Count("authkit") != 0 {
				t.Fatalf("foreign iframe origin: state %s, events %v, %d token calls reached Pica", o.State, o.Result.Events, pica.Count("authkit"))
			}

			// A signed-out user is refused by the auth layer: 401, onError.
			o = runBrowser(t, browserAllowedIframe, "", "error", "")
			if o.State != "error" || !strings.Contains(o.Result.Error, "401") || pica.Count("authkit") != 0 {
				t.Fatalf("signed out: state %s, error %q, %d token calls", o.State, o.Result.Error, pica.Count("authkit"))
			}
		})
	}
}

func scrapeMetrics(t *testing.T) string {
	t.Helper()
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
