package caddyauthkit

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// provisionError adapts a Caddyfile and provisions it as `caddy validate`
// does, starting nothing: the error a user would see at start.
func provisionError(t *testing.T, caddyfile string) error {
	t.Helper()
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// TestLayoutMistakesAreRefusedAtProvision: the places authkit cannot work
// from fail before traffic, naming the site and the prefix; the layouts
// next to them that are fine provision.
func TestLayoutMistakesAreRefusedAtProvision(t *testing.T) {
	t.Setenv("ONE_SECRET_KEY", testSecret)
	authkit := func(options string) string {
		return "authkit {\n\t\tprovider one\n\t\tsecret {env.ONE_SECRET_KEY}\n\t\t" + options + "\n\t}"
	}
	for _, tc := range []struct {
		name, caddyfile string
		want            []string // in the error; none when it must provision
	}{
		{"under handle_path", "app.example.com {\n\thandle_path /authkit/* {\n\t\t" + authkit("") + "\n\t}\n}\n",
			[]string{"site app.example.com", "prefix /authkit", "inside handle_path or after uri strip_prefix"}},
		{"after uri strip_prefix", "app.example.com {\n\turi strip_prefix /api\n\t" + authkit("") + "\n}\n",
			[]string{"site app.example.com", "inside handle_path or after uri strip_prefix"}},
		{"after uri strip_prefix in a route", "app.example.com {\n\troute {\n\t\turi strip_prefix /api\n\t\t" + authkit("") + "\n\t}\n}\n",
			[]string{"inside handle_path or after uri strip_prefix"}},
		{"after uri strip_prefix of another path, in a handle", "app.example.com {\n\turi strip_prefix /v1\n\thandle /authkit/* {\n\t\t" + authkit("") + "\n\t}\n}\n",
			[]string{"site app.example.com", "inside handle_path or after uri strip_prefix"}},
		{"after a matched uri strip_prefix of its prefix", "app.example.com {\n\turi /authkit/* strip_prefix /authkit\n\t" + authkit("") + "\n}\n",
			[]string{"inside handle_path or after uri strip_prefix"}},
		{"after a matched uri strip_prefix of another path", "app.example.com {\n\turi /old/* strip_prefix /old\n\t" + authkit("") + "\n}\n", nil},
		{"after a route block that strips", "app.example.com {\n\troute {\n\t\troute {\n\t\t\turi strip_prefix /api\n\t\t}\n\t\t" + authkit("") + "\n\t}\n}\n",
			[]string{"inside handle_path or after uri strip_prefix"}},
		{"after a matched route block that strips its prefix", "app.example.com {\n\troute {\n\t\troute /authkit/* {\n\t\t\turi strip_prefix /authkit\n\t\t}\n\t\t" + authkit("") + "\n\t}\n}\n",
			[]string{"inside handle_path or after uri strip_prefix"}},
		{"strip_prefix in a handle of its own group", "app.example.com {\n\thandle /authkit/old/* {\n\t\turi strip_prefix /authkit\n\t\trespond old\n\t}\n\thandle {\n\t\t" + authkit("") + "\n\t}\n}\n", nil},
		{"handle_path of the prefix in another site", "a.example.com {\n\thandle_path /authkit/* {\n\t\trespond other\n\t}\n}\nb.example.com {\n\t" + authkit("") + "\n}\nc.example.com {\n\thandle_path /authkit/* {\n\t\trespond other\n\t}\n}\n", nil},
		{"strip_prefix in another handle", "app.example.com {\n\thandle /old/* {\n\t\turi strip_prefix /old\n\t\trespond old\n\t}\n\t" + authkit("") + "\n}\n", nil},
		{"two with one prefix", "app.example.com {\n\t" + authkit("") + "\n\t" + authkit("") + "\n}\n",
			[]string{"site app.example.com", "overlaps another authkit with prefix /authkit"}},
		{"nested prefixes", "app.example.com {\n\t" + authkit("prefix /authkit") + "\n\t" + authkit("prefix /AuthKit/v2") + "\n}\n",
			[]string{"prefix /AuthKit/v2", "overlaps another authkit with prefix /authkit"}},
		{"two prefixes", "app.example.com {\n\t" + authkit("") + "\n\t" + authkit("prefix /pica") + "\n}\n", nil},
		{"one prefix in two sites", "a.example.com {\n\t" + authkit("") + "\n}\nb.example.com {\n\t" + authkit("") + "\n}\n", nil},
		{"trusted proxies only without trusted_proxies", ":8080 {\n\t" + authkit("identity {http.request.header.X-User}\n\t\tidentity_trusted_proxies_only") + "\n}\n",
			[]string{"server srv0 on :8080", "identity_trusted_proxies_only needs trusted_proxies"}},
		{"trusted proxies only with trusted_proxies", "{\n\tservers {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t}\n}\n:8080 {\n\t" +
			authkit("identity {http.request.header.X-User}\n\t\tidentity_trusted_proxies_only") + "\n}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := provisionError(t, tc.caddyfile)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("a fine layout is refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("provisions")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// TestAnEmptyRouteHidesNoStripPrefix: a route without handlers before a
// strip_prefix (possible in JSON) is not taken for the route being loaded.
func TestAnEmptyRouteHidesNoStripPrefix(t *testing.T) {
	cfg := `{"apps": {"http": {"servers": {"srv0": {"listen": [":8080"], "routes": [{},
		{"handle": [{"handler": "rewrite", "strip_path_prefix": "/api"}]},
		{"handle": [{"handler": "authkit", "secret": "{env.AUTHKIT_TEST_SECRET}"}]}]}}}}}`
	var c caddy.Config
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), "after uri strip_prefix") {
		t.Fatalf("provisions: %v", err)
	}
}

// TestATerminalRouteInAnEarlierSubrouteStripsNothingBeforeAuthkit: when a
// terminal route matches, the chain ends there, whether it is loaded
// before authkit's route or sits beside authkit in the route being loaded;
// a route with an empty matcher list matches every request.
func TestATerminalRouteInAnEarlierSubrouteStripsNothingBeforeAuthkit(t *testing.T) {
	const strip = `{"handler": "subroute", "routes": [{%s"handle": [{"handler": "rewrite", "strip_path_prefix": "/api"}]}]}`
	const authkit = `{"handler": "authkit", "secret": "{env.AUTHKIT_TEST_SECRET}"}`
	for _, tc := range []struct {
		name, routes string
		refused      bool
	}{
		{"loaded, terminal", `{"handle": [` + fmt.Sprintf(strip, `"terminal": true, `) + `]}, {"handle": [` + authkit + `]}`, false},
		{"loaded, not terminal", `{"handle": [` + fmt.Sprintf(strip, "") + `]}, {"handle": [` + authkit + `]}`, true},
		{"in authkit's route, terminal", `{"handle": [` + fmt.Sprintf(strip, `"terminal": true, `) + `, ` + authkit + `]}`, false},
		{"in authkit's route, an empty matcher list", `{"handle": [` + fmt.Sprintf(strip, `"match": [], `) + `, ` + authkit + `]}`, true},
	} {
		var c caddy.Config
		if err := json.Unmarshal([]byte(`{"apps": {"http": {"servers": {"srv0": {"listen": [":8080"], "routes": [`+tc.routes+`]}}}}}`), &c); err != nil {
			t.Fatal(err)
		}
		if err := caddy.Validate(&c); (err != nil) != tc.refused || err != nil && !strings.Contains(err.Error(), "after uri strip_prefix") {
			t.Errorf("%s: %v, want refused %v", tc.name, err, tc.refused)
		}
	}
}

// TestBakedSecretIsRefusedHoweverItGotThere: a secret or ticket key that
// is an environment variable's value was baked in by {$VAR}; JSON configs
// are caught at provision as Caddyfiles are at adapt.
func TestBakedSecretIsRefusedHoweverItGotThere(t *testing.T) {
	t.Setenv("AUTHKIT_BAKED", "sk_test_1_bakedButNotSeen")
	for option, value := range map[string]string{"secret": `"secret": "sk_test_1_bakedButNotSeen"`,
		"ticket_key": `"secret": "{env.AUTHKIT_TEST_SECRET}", "ticket_key": "sk_test_1_bakedButNotSeen"`} {
		cfg := `{"apps": {"http": {"servers": {"srv0": {"listen": [":8080"], "routes": [{"handle": [{"handler": "authkit", ` + value + `}]}]}}}}}`
		var c caddy.Config
		if err := json.Unmarshal([]byte(cfg), &c); err != nil {
			t.Fatal(err)
		}
		err := caddy.Validate(&c)
		if err == nil || !strings.Contains(err.Error(), option+" is the value of the environment variable AUTHKIT_BAKED") ||
			strings.Contains(err.Error(), "bakedButNotSeen") {
			t.Fatalf("%s: %v", option, err)
		}
	}
}

// TestHeaderIdentityWarningNamesTheSiteAndTrustsCopyHeaders: a header
// identity nobody sets is warned about, with its site; forward_auth's
// copy_headers of that header silences it.
func TestHeaderIdentityWarningNamesTheSiteAndTrustsCopyHeaders(t *testing.T) {
	startGateway(t, nil, "")
	log := readLog(t)
	mustContain(t, log, "authkit (site localhost, prefix /authkit): the identity comes from the request header X-Auth-User", "Caddy's log")

	start := len(readLog(t))
	tester := caddytest.NewTester(t)
	tester.InitServer(`{
`+testGlobals+`	log {
		output file `+logFile+`
		level DEBUG
	}
}
http://copied.test:9080 {
	forward_auth localhost:1 {
		uri /verify
		copy_headers Remote-User
	}
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		identity {http.request.header.Remote-User}
	}
}
http://uncopied.test:9080 {
	forward_auth localhost:1 {
		uri /verify
		copy_headers X-Other
	}
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		identity {http.request.header.Remote-User}
	}
}
`, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	log = readLog(t)[start:]
	mustContain(t, log, "site uncopied.test", "Caddy's log")
	if strings.Contains(log, "site copied.test, prefix /authkit): the identity comes from the request header") {
		t.Fatal("warned of a header that forward_auth copies")
	}
}

// TestEncodeCompressesAuthkitsAnswers: authkit runs after encode, so a
// site's encode compresses its answers (a real token is ~90 KB of JSON).
func TestEncodeCompressesAuthkitsAnswers(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 250})
	api := httptest.NewServer(pica)
	defer api.Close()
	tester := startSite(t, fmt.Sprintf(`	encode gzip
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
		identity {http.request.header.X-User}
		ticket_only off
	}
`, api.URL)).tester
	req, _ := http.NewRequest("POST", "http://localhost:9080/authkit/token", nil)
	req.Header.Set("X-User", "alice")
	req.Header.Set("Accept-Encoding", "gzip")
	tester.Client.Transport.(*http.Transport).DisableCompression = true
	res, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("%d, Content-Encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
	body := gunzip(t, raw)
	var token struct{ Rows []json.RawMessage }
	if json.Unmarshal(body, &token) != nil || len(token.Rows) != 250 || len(raw) >= len(body)/2 {
		t.Fatalf("%d rows; %d bytes gzipped of %d", len(token.Rows), len(raw), len(body))
	}
}

// shippedLayout is a documented Caddyfile that puts authkit behind an
// authentication layer or a trusted proxy: a Caddyfile users copy.
type shippedLayout struct {
	name, text string
}

// shippedLayouts are examples/, Caddyfile.example, and the complete site
// blocks of the README and docs/ with an auth layer in front of authkit.
func shippedLayouts(t *testing.T) []shippedLayout {
	t.Helper()
	files, _ := filepath.Glob("examples/*.Caddyfile")
	var out []shippedLayout
	for _, file := range append(files, "Caddyfile.example") {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, shippedLayout{file, string(data)})
	}
	for _, file := range docFiles(t) {
		for _, b := range caddyfileBlocks(t, file) {
			guarded := strings.Contains(b.text, "basic_auth") || strings.Contains(b.text, "forward_auth") || strings.Contains(b.text, "trusted_proxies")
			if b.noAdapt || strings.Contains(b.text, "<") || !strings.Contains(b.text, "authkit") || !guarded || !siteLine.MatchString(b.text) ||
				slices.ContainsFunc(externalModules, func(m string) bool { return strings.Contains(b.text, m) }) {
				continue // a fragment, or it needs modules this build lacks
			}
			out = append(out, shippedLayout{fmt.Sprintf("%s:%d", b.file, b.line), b.text})
		}
	}
	return out
}

// siteLine is a site block's opening line: addresses at the line start.
var siteLine = regexp.MustCompile(`(?m)^([^\s{(#][^\n{]*)\{$`)

// standIns are what a shipped layout's upstreams become in a test.
type standIns struct {
	vendor *sandbox.Server
	api    string // the vendor's URL
	app    string // host:port of the app stand-in, which counts its calls
	auth   string // host:port of the forward_auth stand-in
	hits   *atomic.Int64
}

func startStandIns(t *testing.T) *standIns {
	t.Helper()
	s := &standIns{vendor: sandbox.New(sandbox.Options{Secret: testSecret, Provider: sandbox.ProviderBoth}), hits: new(atomic.Int64)}
	s.vendor.AddConnection("alice", "user", "gmail")
	api := httptest.NewServer(s.vendor)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		_, _ = io.WriteString(w, "app")
	}))
	// The auth service signs in a session cookie and says who it is, in
	// every header a documented layout copies.
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err != nil || c.Value != "alice" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		for _, h := range []string{"Remote-User", "X-User-Id", "X-User", "X-Auth-User"} {
			w.Header().Set(h, "alice")
		}
		w.Header().Set("X-Org-Id", "acme")
	}))
	t.Cleanup(func() { api.Close(); app.Close(); auth.Close() })
	s.api, s.app, s.auth = api.URL, strings.TrimPrefix(app.URL, "http://"), strings.TrimPrefix(auth.URL, "http://")
	return s
}

var (
	bcryptLine      = regexp.MustCompile(`(?m)^(\s+)(\w+) \$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$`)
	trustedProxies  = regexp.MustCompile(`trusted_proxies static [^\n]+`)
	authkitOpening  = regexp.MustCompile(`(?m)^(\s*)authkit( @\w+)? \{\n`)
	globalOptionKey = regexp.MustCompile(`(?m)^\t(\w+)`)
	apiOption       = regexp.MustCompile(`(?m)^\s*api\s`)
)

// asShipped is the layout as a test runs it: upstreams, the vendor, the
// trusted proxy range and password hashes swapped for stand-ins, sites on
// the test's ports, and the global options caddytest needs. Nothing else
// changes.
// Each layout runs on ports of its own, port and port+1 (for the demo's
// two sites), so no answer can come from the layout before.
func (s *standIns) asShipped(t *testing.T, text string, port int) string {
	t.Helper()
	http1, http2 := strconv.Itoa(port), strconv.Itoa(port+1)
	text = strings.NewReplacer("localhost:3000", s.app, "localhost:4000", s.app, "localhost:9091", s.auth).Replace(text)
	text = trustedProxies.ReplaceAllString(text, "trusted_proxies static 127.0.0.1/32")
	text = strings.ReplaceAll(text, "/var/log/caddy/", t.TempDir()+"/")
	text = bcryptLine.ReplaceAllStringFunc(text, func(line string) string {
		m := bcryptLine.FindStringSubmatch(line)
		return m[1] + m[2] + " " + bcryptHash(m[2]) // the password is the user's name
	})
	// The demo's own sandbox and page move with its ports.
	text = strings.NewReplacer("localhost:8080", "localhost:"+http1, "localhost:8081", "localhost:"+http2,
		"127.0.0.1:8080", "127.0.0.1:"+http1, "127.0.0.1:8081", "127.0.0.1:"+http2).Replace(text)
	text = withAPI(text, s.api)
	text = siteLine.ReplaceAllStringFunc(text, func(line string) string {
		var addrs []string
		for _, addr := range strings.FieldsFunc(strings.TrimSuffix(line, "{"), func(r rune) bool { return r == ',' || r == ' ' }) {
			addrs = append(addrs, testAddress(addr, http1))
		}
		return strings.Join(addrs, ", ") + " {"
	})
	globals := map[string]string{"admin": "admin localhost:2999", "skip_install_trust": "skip_install_trust", "http_port": "http_port " + http1,
		"https_port": "https_port 9443", "grace_period": "grace_period 1ns", "persist_config": "persist_config off"}
	if strings.HasPrefix(strings.TrimLeft(stripComments(text), "\n"), "{\n") {
		i := strings.Index(text, "{\n")
		end := i + strings.Index(text[i:], "\n}\n")
		for _, m := range globalOptionKey.FindAllStringSubmatch(text[i:end], -1) {
			delete(globals, m[1])
		}
		var lines []string
		for _, line := range globals {
			lines = append(lines, "\t"+line+"\n")
		}
		slices.Sort(lines)
		return text[:i+2] + strings.Join(lines, "") + text[i+2:]
	}
	var lines []string
	for _, line := range globals {
		lines = append(lines, "\t"+line)
	}
	slices.Sort(lines)
	return "{\n" + strings.Join(lines, "\n") + "\n}\n" + text
}

// withAPI points every authkit block without an api at the stand-in vendor.
func withAPI(text, api string) string {
	var out strings.Builder
	for {
		loc := authkitOpening.FindStringIndex(text)
		if loc == nil {
			out.WriteString(text)
			return out.String()
		}
		body := text[loc[1]:]
		end := blockEnd(body)
		out.WriteString(text[:loc[1]])
		if !apiOption.MatchString(body[:end]) {
			indent := authkitOpening.FindStringSubmatch(text[loc[0]:loc[1]])[1]
			out.WriteString(indent + "\tapi " + api + "\n")
		}
		text = body
	}
}

// blockEnd is the offset of the brace closing a block whose opening brace
// came just before s.
func blockEnd(s string) int {
	depth := 1
	for i, c := range s {
		switch c {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return len(s)
}

func stripComments(text string) string {
	var lines []string
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// testAddress moves a site address to the test's plain-HTTP port.
func testAddress(addr, port string) string {
	addr = strings.TrimSpace(addr)
	switch {
	case strings.HasPrefix(addr, ":"):
		return "http://localhost:" + port
	case strings.HasPrefix(addr, "http://"):
		return addr
	}
	return "http://" + strings.TrimPrefix(addr, "https://") + ":" + port
}

// layoutFacts are what the probes need to know of a shipped layout.
type layoutFacts struct {
	host     string   // of the site authkit sits in
	prefixes []string // of its authkit blocks
	origin   string   // one that cors_origins allows
	// signIn adds the credentials of a signed-in alice.
	signIn func(*http.Request)
	// authLayer: Caddy itself authenticates (basic_auth, forward_auth), so
	// nothing of the app may answer a caller without credentials.
	authLayer bool
	// protected are app paths only a signed-in caller may reach.
	protected []string
	// identityHeader, behind a trusted proxy, is the header it sets; a
	// caller without credentials cannot send it through the proxy.
	identityHeader string
	// ticketOnly: the token route takes tickets only (the default); with
	// ticket_only off the auth layer covers it, and the signed-in caller's
	// own credentials get the token.
	ticketOnly bool
}

// spoofs are what a caller without credentials sends on route to name
// someone: every identity header a layout reads, and a wrong password.
// Behind a trusted proxy the proxy's own header cannot come from such a
// caller, but on the token route, which the proxy lets through for the
// vendor's iframe, it may.
func (f layoutFacts) spoofs(route string) map[string]string {
	out := map[string]string{
		"Remote-User": "alice", "X-User-Id": "alice", "X-Org-Id": "acme", "X-Forwarded-User": "alice",
		"X-Auth-User": "alice", "X-User": "alice", "Authorization": "Basic YWxpY2U6d3Jvbmc=",
	}
	if f.identityHeader != "" && !strings.HasSuffix(strings.ToLower(route), "token") {
		delete(out, f.identityHeader)
	}
	return out
}

func factsOf(t *testing.T, text string, port int) layoutFacts {
	t.Helper()
	text = stripComments(text)
	p := strconv.Itoa(port)
	f := layoutFacts{host: "localhost:" + p, origin: "https://authkit.picaos.com", protected: []string{"/", "/private/admin", "/api/x"},
		ticketOnly: !strings.Contains(text, "ticket_only off")}
	for _, line := range siteLine.FindAllString(text, -1) {
		if strings.Contains(line, ":"+p) {
			f.host = strings.TrimPrefix(strings.Fields(strings.TrimSuffix(line, "{"))[0], "http://")
			f.host = strings.TrimSuffix(f.host, ",")
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*prefix\s+(\S+)`).FindAllStringSubmatch(text, -1) {
		f.prefixes = append(f.prefixes, "/"+strings.Trim(m[1], "/"))
	}
	if n := len(authkitOpening.FindAllString(text, -1)); len(f.prefixes) < n {
		f.prefixes = append(f.prefixes, DefaultPrefix)
	}
	if strings.Contains(text, "provider one") {
		f.origin = "https://auth.withone.ai"
	}
	if m := regexp.MustCompile(`cors_origins\s+(\S+)`).FindStringSubmatch(text); m != nil {
		f.origin = m[1]
	}
	switch {
	case strings.Contains(text, "forward_auth"):
		f.authLayer = true
		f.signIn = func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session", Value: "alice"}) }
	case strings.Contains(text, "basic_auth"):
		f.authLayer = true
		user := bcryptLine.FindStringSubmatch(text)[2]
		f.signIn = func(r *http.Request) { r.SetBasicAuth(user, user) }
		if user == "demo" {
			// The demo's page is public by design: it has the sign-in form.
			f.signIn = func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "demo_auth", Value: "ZGVtbzpkZW1v"}) }
			f.protected = []string{"/whoami"}
		}
	default: // a trusted proxy in front sets the identity header
		header := regexp.MustCompile(`identity \{http\.request\.header\.([\w-]+)\}`).FindStringSubmatch(text)
		if header == nil {
			t.Fatal("no auth layer, and no header identity")
		}
		f.identityHeader = header[1]
		f.signIn = func(r *http.Request) { r.Header.Set(header[1], "alice") }
	}
	return f
}

// TestShippedLayoutsHoldWithoutCredentials runs every documented layout as
// shipped, its upstreams swapped for stand-ins, and attacks it without
// credentials: no token, no ticket, no connections, nothing from
// passthrough, and nothing of the app, also by OPTIONS and by the case,
// slash and dot variants of the token route that a site's matchers fold.
// Signed in, the ticket flow works.
func TestShippedLayoutsHoldWithoutCredentials(t *testing.T) {
	t.Setenv("ONE_SECRET_KEY", testSecret)
	t.Setenv("PICA_SECRET_KEY", testSecret)
	layouts := shippedLayouts(t)
	if len(layouts) < 8 {
		t.Fatalf("found %d shipped layouts", len(layouts))
	}
	for i, layout := range layouts {
		t.Run(layout.name, func(t *testing.T) {
			port := 9100 + 2*i
			s := startStandIns(t)
			config := s.asShipped(t, layout.text, port)
			f := factsOf(t, config, port)
			tester := caddytest.NewTester(t)
			tester.InitServer(config, "caddyfile")
			if t.Failed() {
				t.FailNow()
			}
			tester.Client.Jar = nil
			send := func(method, target string, header map[string]string, signedIn bool) (int, string) {
				t.Helper()
				return rawProbe(t, f.host, method, target, header, func(r *http.Request) {
					if signedIn {
						f.signIn(r)
					}
				})
			}
			for _, prefix := range f.prefixes {
				key := map[string]string{"X-Pica-Connection-Key": s.vendor.Connections()[0].Key, "X-AuthKit-Connection": "gmail"}
				for _, probe := range []struct {
					method, target string
					header         map[string]string
				}{
					{"POST", prefix + "/token", nil},
					{"POST", prefix + "/token?page=1&limit=100", nil},
					{"POST", strings.ToUpper(prefix + "/token"), nil},
					{"POST", "/" + prefix + "/token", nil},
					{"POST", "/x/.." + prefix + "/token", nil},
					{"POST", prefix + "/./token", nil},
					{"POST", prefix + "%2Ftoken", nil},
					{"POST", prefix + "/ticket", nil},
					{"GET", prefix + "/connections", nil},
					{"GET", strings.ToUpper(prefix) + "/connections", nil},
					{"GET", "/" + prefix + "//connections", nil},
					{"GET", prefix + "/connectors", nil},
					{"GET", prefix + "/passthrough/gmail/v1/users/me", key},
					{"DELETE", prefix + "/connections/" + s.vendor.Connections()[0].ID, nil},
				} {
					header := probe.header
					if header == nil {
						header = f.spoofs(probe.target)
					}
					status, body := send(probe.method, probe.target, header, false)
					if status/100 == 2 {
						t.Errorf("%s %s without credentials: %d %.200s", probe.method, probe.target, status, body)
					}
				}
				if status, _ := send("OPTIONS", prefix+"/token", map[string]string{"Origin": f.origin, "Access-Control-Request-Method": "POST"}, false); status != 204 {
					t.Errorf("preflight of the token route: %d", status)
				}
			}
			if f.authLayer {
				for _, path := range f.protected {
					for _, method := range []string{"GET", "OPTIONS", "POST"} {
						for _, target := range []string{path, strings.ToUpper(path), "/" + path} {
							if status, body := send(method, target, f.spoofs(target), false); status/100 == 2 {
								t.Errorf("%s %s of the app without credentials: %d %.100s", method, target, status, body)
							}
						}
					}
				}
				if n := s.hits.Load(); n != 0 {
					t.Errorf("the app was reached %d times without credentials", n)
				}
			}
			if reqs := s.vendor.Requests(); len(reqs) != 0 {
				t.Fatalf("the vendor was asked %s %s for a caller without credentials", reqs[0].Method, reqs[0].Path)
			}

			// Signed in, the page gets a ticket and the iframe a token by it.
			for _, prefix := range f.prefixes {
				status, body := send("POST", prefix+"/ticket", nil, true)
				if status != 200 {
					t.Fatalf("a signed-in ticket: %d %s", status, body)
				}
				var minted struct{ Ticket string }
				_ = json.Unmarshal([]byte(body), &minted)
				status, body = send("POST", prefix+"/token", map[string]string{"X-AuthKit-Ticket": minted.Ticket, "Origin": f.origin}, !f.ticketOnly)
				if status != 200 || !strings.Contains(body, `"rows"`) {
					t.Fatalf("the token by ticket: %d %.300s", status, body)
				}
			}
		})
	}
}

// rawProbe sends target exactly as written to the site host (on
// 127.0.0.1), as no URL parser would, and returns the status and body.
func rawProbe(t *testing.T, host, method, target string, header map[string]string, sign func(*http.Request)) (int, string) {
	t.Helper()
	r, _ := http.NewRequest(method, "http://"+host+"/", nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	sign(r)
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\nContent-Length: 0\r\n")
	for k, vs := range r.Header {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	res := rawBytesAt(t, "127.0.0.1:"+strings.Split(host, ":")[1], b.String())
	return res.StatusCode, string(res.body)
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReleasedPrefixesCanBeClaimedAgain: a handler's Cleanup gives its
// prefix back, and only its own, so a reload can claim it again; a scope
// with no claims left is forgotten.
func TestReleasedPrefixesCanBeClaimedAgain(t *testing.T) {
	scope := new(int)
	handler := func(prefix string) *AuthKit { return &AuthKit{Prefix: prefix, prefixLower: prefix} }
	a, b := handler("/authkit"), handler("/pica")
	if claimPrefix(scope, a) != "" || claimPrefix(scope, b) != "" {
		t.Fatal("two distinct prefixes overlap")
	}
	releasePrefix(a)
	again := handler("/authkit/v2")
	if other := claimPrefix(scope, again); other != "" {
		t.Fatalf("a released prefix still claimed by %s", other)
	}
	if other := claimPrefix(scope, handler("/pica")); other != "/pica" {
		t.Fatalf("another handler's prefix released with it: %q", other)
	}
	releasePrefix(handler("/never-claimed"))
	releasePrefix(b)
	releasePrefix(again)
	prefixes.Lock()
	_, remembered := prefixes.claimed[scope]
	prefixes.Unlock()
	if remembered {
		t.Fatal("a scope with no claims is kept")
	}
}
