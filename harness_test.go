package caddyauthkit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	// appURL is a site with basic_auth in front of every route, the token
	// route included, so it turns ticket_only off (the legacy set-up).
	appURL = "http://localhost:9080"
	// headerURL is a site whose identity is the X-Auth-User header, as a
	// trusted proxy in front would set it on every route; ticket_only off.
	headerURL = "http://localhost:9081"
	// ticketURL is a site as the docs set it up: basic_auth covers
	// everything but the token route (reached from the vendor's iframe with
	// a ticket) and preflight under the prefix; ticket_only is on.
	ticketURL = "http://localhost:9082"
)

// testGlobals are the global options of every test config: Caddy's
// admin API and ports of the tests, and no waiting at a reload.
const testGlobals = `	admin localhost:2999
	skip_install_trust
	http_port 9080
	https_port 9443
	grace_period 1ns
`

const gatewayConfig = `{
` + testGlobals + `	debug
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
		ticket_only off
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
		ticket_only off
		%[5]s
	}
	respond "app" 200
}

http://localhost:9082 {
	log
	@authed {
		not path /authkit/token
		not {
			method OPTIONS
			path /authkit/*
		}
	}
	basic_auth @authed {
		alice %[2]s
		bob %[3]s
	}
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %[4]s
		cors_origins https://authkit.picaos.com
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
	// caFile is the vendor's CA PEM when it is served over TLS.
	caFile string
	// options are those loaded into both authkit blocks.
	options string
	// alice's and bob's connections, made before Caddy starts
	alice, bob sandbox.Connection
}

// startGateway loads the test config with options added to both authkit
// blocks, against pica (a fresh sandbox when nil) served over plain HTTP.
func startGateway(t *testing.T, pica *sandbox.Server, options string) *gateway {
	t.Helper()
	return startGatewayWith(t, vendorSetup{pica: pica}, options)
}

// vendorSetup says how the vendor the gateway talks to is served.
type vendorSetup struct {
	// pica is the sandbox behind the vendor; a fresh one when nil.
	pica *sandbox.Server
	// wrap, when set, stands between the gateway and the sandbox: a hostile
	// or observing vendor.
	wrap func(http.Handler) http.Handler
	// tls serves the vendor over HTTPS with httptest's own CA, which the
	// gateway is told to trust only in its proxy block (see trustVendorCA).
	tls bool
}

// startGatewayWith starts the vendor as setup says, then Caddy with options
// added to both authkit blocks. With setup.tls, vendorCAPlaceholder in
// options becomes the path of the vendor's CA PEM file.
func startGatewayWith(t *testing.T, setup vendorSetup, options string) *gateway {
	t.Helper()
	pica := setup.pica
	if pica == nil {
		pica = sandbox.New(sandbox.Options{Secret: testSecret})
	}
	g := &gateway{t: t, pica: pica}
	g.alice = pica.AddConnection("alice", "user", "gmail")
	g.bob = pica.AddConnection("bob", "user", "slack")
	var handler http.Handler = pica
	if setup.wrap != nil {
		handler = setup.wrap(pica)
	}
	if setup.tls {
		upstream := httptest.NewTLSServer(handler)
		t.Cleanup(upstream.Close)
		g.picaURL = upstream.URL
		g.caFile = writeCA(t, upstream)
		options = strings.ReplaceAll(options, vendorCAPlaceholder, g.caFile)
	} else {
		upstream := httptest.NewServer(handler)
		t.Cleanup(upstream.Close)
		g.picaURL = upstream.URL
	}
	g.options = options
	g.tester = caddytest.NewTester(t)
	g.load(options)
	pica.ResetRequests()
	return g
}

// load (re)loads the test config with options, as a config change in
// production would: InitServer posts it to the admin API's /load and waits
// until the admin API answers with it.
func (g *gateway) load(options string) {
	g.t.Helper()
	g.loadConfig(fmt.Sprintf(gatewayConfig, logFile, aliceHash, bobHash, g.picaURL, options))
}

// configLoads numbers the configs the harness loads.
var configLoads atomic.Int64

// loadConfig loads a gatewayConfig and returns once the client's connection
// to each site is served by it. Caddy stops the old config's servers just
// after a reload answers, so until then a new connection may still be
// accepted by one of them (it says so in caddyhttp's App.Stop); and the old
// servers close their idle connections. Each site's answers carry the
// number of the load, and the client keeps a connection to each that the
// new config answered on.
func (g *gateway) loadConfig(config string) {
	g.t.Helper()
	load := strconv.FormatInt(configLoads.Add(1), 10)
	config = strings.ReplaceAll(config, "\n\tlog\n", "\n\tlog\n\theader X-Test-Load "+load+"\n")
	g.tester.InitServer(config, "caddyfile")
	if g.t.Failed() {
		g.t.FailNow()
	}
	answeredByNewConfig := func(site string) bool {
		res, err := g.tester.Client.Get(site + "/")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.Header.Get("X-Test-Load") == load
	}
	pinned := poll(g.t, 10*time.Second, func() bool {
		for _, site := range []string{appURL, headerURL, ticketURL} {
			if !answeredByNewConfig(site) {
				g.tester.Client.CloseIdleConnections()
				return false
			}
		}
		return true
	})
	if !pinned {
		g.t.Fatal("the sites do not answer from the new config")
	}
}

// writeCA writes the certificate of a TLS test server, its own CA, as PEM
// to a temporary file and returns its path.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vendor-ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, block, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// vendorCAPlaceholder stands for the TLS vendor's CA file in options.
const vendorCAPlaceholder = "{vendor_ca}"

// trustVendorCA is the proxy block that trusts the TLS vendor's CA, and
// nothing else about it: every route must reach the vendor with it.
const trustVendorCA = `proxy {
			transport http {
				tls_trust_pool file ` + vendorCAPlaceholder + `
			}
		}`

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

// call is one call to the gateway. user signs in with basic_auth.
type call struct {
	method, url, user string
	header            map[string]string
	// values are header fields sent with several values.
	values map[string][]string
	body   []byte
}

func (g *gateway) do(req call) response {
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
	for k, vs := range req.values {
		r.Header[http.CanonicalHeaderKey(k)] = vs
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

// startSite runs one site at appURL, with the tests' global options and
// body as its directives, and returns the gateway to call it through.
func startSite(t *testing.T, body string) *gateway {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer("{\n"+testGlobals+"}\n"+appURL+" {\n"+body+"}\n", "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return &gateway{t: t, tester: tester}
}

// ticketFor is the ticket header of a ticket the ticket site mints for user.
func (g *gateway) ticketFor(user string) map[string]string {
	g.t.Helper()
	res := g.do(call{method: "POST", url: ticketURL + "/authkit/ticket", user: user})
	expect(g.t, res, 200, "")
	return map[string]string{ticketHeader: res.json(g.t)["ticket"].(string)}
}

func (g *gateway) as(user, method, path string, header map[string]string) response {
	g.t.Helper()
	return g.do(call{method: method, url: appURL + path, user: user, header: header})
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

// instance is a second Caddy, run as a subprocess of the test binary's own
// build of cmd/caddy: caddytest allows one admin endpoint per process.
type instance struct {
	t *testing.T
	// url is the instance's one site; admin its admin endpoint.
	url, admin string
	cmd        *exec.Cmd
	stderr     *lockedBuffer
}

var (
	caddyBinaryOnce sync.Once
	caddyBinary     string
	caddyBinaryErr  error
)

// buildCaddy builds cmd/caddy once per test run into a temporary directory.
func buildCaddy(t *testing.T) string {
	t.Helper()
	caddyBinaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caddyauthkit-bin")
		if err != nil {
			caddyBinaryErr = err
			return
		}
		caddyBinary = filepath.Join(dir, "caddy")
		out, err := exec.Command("go", "build", "-o", caddyBinary, "./cmd/caddy").CombinedOutput()
		if err != nil {
			caddyBinaryErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if caddyBinaryErr != nil {
		t.Fatal(caddyBinaryErr)
	}
	return caddyBinary
}

// freePort returns a port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// instanceConfig is the second instance's Caddyfile: one site whose
// identity is the X-Auth-User header, as the header site of gatewayConfig.
// A reload lets the old config finish what it took (grace_period), as in
// production: a call in flight is answered, not cut.
const instanceConfig = `{
	admin 127.0.0.1:%[1]d
	skip_install_trust
	http_port %[2]d
	grace_period 10s
}

http://127.0.0.1:%[2]d {
	%[3]s
}
`

// authkitSite is an instance's site: authkit against api, identity from
// X-Auth-User, options added, and its name on every answer.
func authkitSite(api, options string) string {
	return fmt.Sprintf(`header X-Instance {http.request.local.port}
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
		identity {http.request.header.X-Auth-User}
		%s
	}
	respond "app" 200`, api, options)
}

// startInstance runs a second Caddy against api with options in its authkit
// block, and returns once it serves its config: Caddy says so on stderr.
func startInstance(t *testing.T, api, options string) *instance {
	t.Helper()
	return startCaddy(t, authkitSite(api, options))
}

// startCaddy runs another Caddy whose one site is site, and returns once it
// serves its config: Caddy says so on stderr.
func startCaddy(t *testing.T, site string) *instance {
	t.Helper()
	bin := buildCaddy(t)
	adminPort, httpPort := freePort(t), freePort(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(instanceConfig, adminPort, httpPort, site)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), cmd: cmd, stderr: new(lockedBuffer)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		scanner := bufio.NewScanner(pipe)
		signalled := false
		for scanner.Scan() {
			line := scanner.Text()
			in.stderr.WriteString(line + "\n")
			if !signalled && strings.Contains(line, `"serving initial configuration"`) {
				signalled = true
				ready <- true
			}
		}
		if !signalled {
			ready <- false // it exited first
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the second Caddy exited before serving:\n%s", in.stderr.String())
		}
	case <-time.After(30 * time.Second): // a failure guard, not a wait
		t.Fatalf("the second Caddy did not start in 30s:\n%s", in.stderr.String())
	}
	return in
}

// reload posts a new Caddyfile to the instance's admin API; Caddy answers
// once the new config is running.
func (in *instance) reload(api, options string) {
	in.t.Helper()
	var adminPort, httpPort int
	fmt.Sscanf(in.admin, "http://127.0.0.1:%d", &adminPort)
	fmt.Sscanf(in.url, "http://127.0.0.1:%d", &httpPort)
	body := fmt.Sprintf(instanceConfig, adminPort, httpPort, authkitSite(api, options))
	res, err := http.Post(in.admin+"/load", "text/caddyfile", strings.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		in.t.Fatalf("reload: %d %s", res.StatusCode, b)
	}
}

// do makes one call to the instance.
func (in *instance) do(method, path string, header map[string]string) response {
	in.t.Helper()
	r, err := http.NewRequest(method, in.url+path, nil)
	if err != nil {
		in.t.Fatal(err)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	// A connection per call: a reload closes the idle ones under a client.
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(r)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		in.t.Fatal(err)
	}
	return response{res, b}
}

// lockedBuffer is a bytes.Buffer safe for one writer and other readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	b.buf.WriteString(s)
	b.mu.Unlock()
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// poll checks cond every few milliseconds until it holds or timeout has
// passed, and says whether it held: for state with no event to wait on
// (goroutines winding down), never to order the test's own steps.
func poll(t *testing.T, timeout time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}

// startGatewayBehind is startGateway with front answering the vendor's
// calls it wants to, and pica the others: a hostile vendor.
func startGatewayBehind(t *testing.T, pica *sandbox.Server, front func(w http.ResponseWriter, r *http.Request) bool, global, options string) *gateway {
	t.Helper()
	g := &gateway{t: t, pica: pica}
	g.alice = pica.AddConnection("alice", "user", "gmail")
	g.bob = pica.AddConnection("bob", "user", "slack")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if front == nil || !front(w, r) {
			pica.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(upstream.Close)
	g.picaURL = upstream.URL
	config := fmt.Sprintf(gatewayConfig, logFile, aliceHash, bobHash, upstream.URL, options)
	config = strings.Replace(config, "\tdebug\n", "\tdebug\n"+global, 1)
	g.tester = caddytest.NewTester(t)
	g.loadConfig(config)
	pica.ResetRequests()
	return g
}

// logLines are the JSON lines Caddy logged after offset bytes of the log.
func logLines(t *testing.T, offset int) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range strings.Split(readLog(t)[offset:], "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil {
			lines = append(lines, entry)
		}
	}
	return lines
}

func logged(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// config is the test config with options in every authkit block, as
// g.load would load it; tests edit it for layouts of their own.
func (g *gateway) config(options string) string {
	return fmt.Sprintf(gatewayConfig, logFile, aliceHash, bobHash, g.picaURL, options)
}

// rawRequestAt sends target to site (appURL, headerURL or ticketURL)
// exactly as written, which no URL parser would, on a connection of its
// own, and returns the answer with its body read.
func rawRequestAt(t *testing.T, site, method, target string, header map[string]string) response {
	t.Helper()
	host := strings.TrimPrefix(site, "http://")
	_, port, _ := strings.Cut(host, ":")
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n")
	for k, v := range header {
		b.WriteString(k + ": " + v + "\r\n")
	}
	b.WriteString("\r\n")
	return rawBytesAt(t, "127.0.0.1:"+port, b.String())
}

// rawBytesAt writes raw, a whole request as bytes, to addr and returns
// the one answer, its body read.
func rawBytesAt(t *testing.T, addr, raw string) response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // a failure guard
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%.80q: %v", raw, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%.80q: reading the answer: %v", raw, err)
	}
	return response{res, body}
}
