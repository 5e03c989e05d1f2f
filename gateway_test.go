package caddyauthkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// testSecret is the Pica secret of the tests; the hunts look for it everywhere.
const testSecret = "sk_test_1_CADDYAUTHKITsecretVALUEnotToBeSeen42"

var (
	// logFile receives Caddy's logs at debug level, access logs included.
	logFile string
	// configDir is where Caddy autosaves its config.
	configDir string
	// hashes of the basic_auth users alice and bob (password: their name).
	aliceHash, bobHash string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "caddyauthkit-test")
	if err != nil {
		panic(err)
	}
	configDir = filepath.Join(dir, "config")
	os.Setenv("XDG_CONFIG_HOME", configDir)
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	// Caddy computed this at init, before the variables above were set.
	caddy.ConfigAutosavePath = filepath.Join(configDir, "autosave.json")
	os.Setenv("AUTHKIT_TEST_SECRET", testSecret)
	logFile = filepath.Join(dir, "caddy.log")
	aliceHash = bcryptHash("alice")
	bobHash = bcryptHash("bob")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bcryptHash(password string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}

const (
	// appURL is a site with basic_auth in front of authkit.
	appURL = "http://localhost:9080"
	// headerURL is a site whose identity is the X-Auth-User header.
	headerURL = "http://localhost:9081"
)

const gatewayConfig = `{
	admin localhost:2999
	skip_install_trust
	http_port 9080
	https_port 9443
	grace_period 1ns
	debug
	log {
		output file %[1]s
		level DEBUG
	}
}

http://localhost:9080 {
	log
	@authed not method OPTIONS
	basic_auth @authed {
		alice %[2]s
		bob %[3]s
	}
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %[4]s
		cors_origins https://authkit.picaos.com http://app.test
		%[5]s
	}
	respond "app" 200
}

http://localhost:9081 {
	log
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %[4]s
		identity {http.request.header.X-Auth-User}
		identity_type {http.request.header.X-Auth-Type}
		%[5]s
	}
	respond "app" 200
}
`

// gateway is a real Caddy with authkit in front of a sandboxed Pica.
type gateway struct {
	t       *testing.T
	tester  *caddytest.Tester
	pica    *sandbox.Server
	picaURL string
	// alice's and bob's connections, made before Caddy starts
	alice, bob sandbox.Connection
}

// startGateway loads the test config with options added to both authkit
// blocks, against pica (a fresh sandbox when nil).
func startGateway(t *testing.T, pica *sandbox.Server, options string) *gateway {
	t.Helper()
	if pica == nil {
		pica = sandbox.New(sandbox.Options{Secret: testSecret})
	}
	g := &gateway{t: t, pica: pica}
	g.alice = pica.AddConnection("alice", "user", "gmail")
	g.bob = pica.AddConnection("bob", "user", "slack")
	upstream := httptest.NewServer(pica)
	t.Cleanup(upstream.Close)
	g.picaURL = upstream.URL

	g.tester = caddytest.NewTester(t)
	g.tester.InitServer(fmt.Sprintf(gatewayConfig, logFile, aliceHash, bobHash, upstream.URL, options), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	pica.ResetRequests()
	return g
}

// response is an answer with its body read.
type response struct {
	*http.Response
	body []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %q", err, r.body)
	}
	return v
}

// errorCode is the code of an error envelope.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	env, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error envelope in %s", r.body)
	}
	return env["code"].(string)
}

// request is one call to the gateway. user signs in with basic_auth.
type request struct {
	method, url, user string
	header            map[string]string
	body              []byte
}

func (g *gateway) do(req request) response {
	g.t.Helper()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	r, err := http.NewRequest(req.method, req.url, body)
	if err != nil {
		g.t.Fatal(err)
	}
	if req.user != "" {
		r.SetBasicAuth(req.user, req.user)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	res, err := g.tester.Client.Do(r)
	if err != nil {
		g.t.Fatalf("%s %s: %v", req.method, req.url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		g.t.Fatalf("%s %s: reading body: %v", req.method, req.url, err)
	}
	return response{res, b}
}

func (g *gateway) as(user, method, path string, header map[string]string) response {
	g.t.Helper()
	return g.do(request{method: method, url: appURL + path, user: user, header: header})
}

// concurrently makes n calls at once and returns their answers in order;
// the caller checks them on the test's own goroutine.
func concurrently(n int, call func(i int) response) []response {
	answers := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = call(i)
		}()
	}
	wg.Wait()
	return answers
}

// expect fails the test unless res has status (and, for errors, code).
func expect(t *testing.T, res response, status int, code string) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", res.StatusCode, status, res.body)
	}
	if code != "" {
		if got := res.errorCode(t); got != code {
			t.Fatalf("error code %q, want %q", got, code)
		}
	}
}

func readLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustContain(t *testing.T, haystack, needle, what string) {
	t.Helper()
	if !strings.Contains(haystack, needle) {
		t.Fatalf("%s: %q not found in %q", what, needle, haystack)
	}
}
