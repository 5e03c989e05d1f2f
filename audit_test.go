package caddyauthkit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

const auditLogger = "http.handlers.authkit.audit"

// readmeAuditSnippet is the global options block docs/audit.md shows for
// routing the audit trail, exactly as written there.
func readmeAuditSnippet(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Routing it\n")
	if !ok {
		t.Fatal("docs/audit.md has no Routing it section")
	}
	_, block, ok := strings.Cut(section, "```caddyfile\n")
	if !ok {
		t.Fatal("the section has no caddyfile block")
	}
	block, _, _ = strings.Cut(block, "```")
	return block
}

// auditLines are the audit logger's entries in file.
func auditLines(t *testing.T, file string) []map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	scanner := bufio.NewScanner(f)
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		var entry map[string]any
		if json.Unmarshal(scanner.Bytes(), &entry) == nil && entry["logger"] == auditLogger {
			lines = append(lines, entry)
		}
	}
	return lines
}

// auditLineOf is the audit entry of request id in file, or nil.
func auditLineOf(t *testing.T, file string, requestID any) map[string]any {
	t.Helper()
	for _, line := range auditLines(t, file) {
		if line["uuid"] == requestID {
			return line
		}
	}
	return nil
}

func TestREADMEAuditSnippetRoutesTheTrailToItsOwnFile(t *testing.T) {
	snippet := readmeAuditSnippet(t)
	const readmePath = "/var/log/caddy/authkit-audit.log"
	if !strings.Contains(snippet, readmePath) || !strings.HasPrefix(snippet, "{\n") {
		t.Fatalf("the README snippet changed shape: %q", snippet)
	}
	file := filepath.Join(t.TempDir(), "audit.log")
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	alice := pica.AddConnection("alice", "user", "gmail")
	bob := pica.AddConnection("bob", "user", "slack")
	upstream := httptest.NewServer(pica)
	defer upstream.Close()
	global := strings.Replace(strings.Replace(snippet, readmePath, file, 1), "{\n",
		"{\n"+testGlobals, 1)
	site := fmt.Sprintf("http://localhost:9080 {\n\tauthkit {\n\t\tsecret {env.AUTHKIT_TEST_SECRET}\n\t\tapi %s\n\t\tidentity {http.request.header.X-User}\n\t}\n}\n", upstream.URL)
	tester := runWithRecorder(t, global+site, eventPassthrough, eventDenied)

	call := func(header map[string]string) *http.Response {
		req, _ := http.NewRequest("GET", "http://localhost:9080/authkit/passthrough/gmail/v1/users/me?q=secret-query", nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := call(map[string]string{"X-User": "alice", "X-AuthKit-Connection": "gmail"}); res.StatusCode != http.StatusOK {
		t.Fatalf("keyless call: %d", res.StatusCode)
	}
	// The event is queued after the line is written: once it is seen, the line is there.
	allowed := waitEvent(t, eventPassthrough)
	if res := call(map[string]string{"X-User": "alice", "X-Pica-Connection-Key": bob.Key}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("bob's key: %d", res.StatusCode)
	}
	denied := waitEvent(t, eventDenied)

	line := auditLineOf(t, file, allowed.Data["uuid"])
	if line == nil {
		t.Fatalf("no audit line for the call in %s: %v", file, auditLines(t, file))
	}
	if line["msg"] != "authkit passthrough" || line["route"] != "passthrough" || line["outcome"] != outcomeAllowed ||
		line["status"] != float64(200) || line["connection_id"] != alice.ID || line["platform"] != "gmail" ||
		line["identity_type"] != "user" || line["identity"] != allowed.Data["identity"] || line["method"] != "GET" ||
		line["path"] != "/v1/passthrough/gmail/v1/users/me" || line["size"].(float64) <= 0 || line["level"] != "info" {
		t.Fatalf("audit line %v", line)
	}
	deniedLine := auditLineOf(t, file, denied.Data["uuid"])
	if deniedLine == nil || deniedLine["outcome"] != outcomeDenied || deniedLine["code"] != "connection_not_owned" {
		t.Fatalf("denial line %v", deniedLine)
	}

	raw, _ := os.ReadFile(file)
	for _, secret := range []string{alice.Key, bob.Key, testSecret, `"alice"`, "secret-query"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("the audit file holds %q", secret)
		}
	}
	// Only the audit trail goes to the file.
	for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
		if !strings.Contains(line, `"logger":"`+auditLogger+`"`) {
			t.Fatalf("the audit file holds another logger's line: %s", line)
		}
	}
}

func TestAuditLinesForTokenTicketAndDeletion(t *testing.T) {
	g := startGatewayWithEvents(t, "")
	expect(t, g.as("alice", "POST", "/authkit/ticket", nil), http.StatusOK, "")
	ticket := waitEvent(t, eventTicketIssued)
	if line := auditLineOf(t, logFile, ticket.Data["uuid"]); line == nil || line["route"] != "ticket" || line["outcome"] != outcomeAllowed {
		t.Fatalf("ticket line %v", line)
	}
	expect(t, g.as("alice", "DELETE", "/authkit/connections/"+g.alice.ID, nil), http.StatusOK, "")
	deleted := waitEvent(t, eventConnectionDeleted)
	if line := auditLineOf(t, logFile, deleted.Data["uuid"]); line == nil || line["connection_id"] != g.alice.ID || line["status"] != float64(200) {
		t.Fatalf("deletion line %v", line)
	}

	// The token route emits no event; its line is written as the handler
	// returns, a moment after the answer, so it is looked for until a deadline.
	before := len(auditLines(t, logFile))
	res := g.as("alice", "POST", "/authkit/token", nil)
	expect(t, res, http.StatusOK, "")
	var line map[string]any
	found := poll(t, 5*time.Second, func() bool {
		lines := auditLines(t, logFile)
		if len(lines) > before && lines[len(lines)-1]["route"] == "token" {
			line = lines[len(lines)-1]
			return true
		}
		return false
	})
	if !found {
		t.Fatal("no audit line for the token")
	}
	if line["outcome"] != outcomeAllowed || line["identity"] != ticket.Data["identity"] || line["uuid"] == "" {
		t.Fatalf("token line %v", line)
	}
	if strings.Contains(readLog(t), testSecret) {
		t.Fatal("the secret is in the log")
	}
}

func TestAuditOffWritesNoLineButEventsStillGo(t *testing.T) {
	g := startGatewayWithEvents(t, "audit off")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.alice.Key}), http.StatusOK, "")
	e := waitEvent(t, eventPassthrough)
	// The access log line is written after the handler returned, so after
	// any audit line would have been.
	if !poll(t, 5*time.Second, func() bool { return strings.Contains(readLog(t), e.Data["uuid"].(string)) }) {
		t.Fatal("no access log line for the call")
	}
	if line := auditLineOf(t, logFile, e.Data["uuid"]); line != nil {
		t.Fatalf("audit off, yet %v", line)
	}
}

func TestCaddyfileAuditOption(t *testing.T) {
	for input, want := range map[string]*bool{
		"authkit {\n\tsecret {env.X}\n}":              nil,
		"authkit {\n\tsecret {env.X}\n\taudit off\n}": new(bool),
		"authkit {\n\tsecret {env.X}\n\taudit on\n}":  nil, // the default
	} {
		var a AuthKit
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			t.Fatalf("%q: %v", input, err)
		}
		if (a.Audit == nil) != (want == nil) || a.Audit != nil && *a.Audit != *want {
			t.Fatalf("%q: audit %v, want %v", input, a.Audit, want)
		}
	}
	var a AuthKit
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("authkit {\n\taudit maybe\n}")); err == nil {
		t.Fatal("audit maybe was accepted")
	}
}

func TestAuditOutcome(t *testing.T) {
	for _, c := range []struct {
		status    int
		code      string
		reconnect bool
		want      string
	}{
		{200, "", false, outcomeAllowed},
		{401, "identity_missing", false, outcomeDenied},
		{403, "connection_not_owned", false, outcomeDenied},
		{404, "connection_not_found", false, outcomeDenied},
		{404, "route_not_found", false, outcomeFailed},
		{400, "body_invalid", false, outcomeFailed},
		{399, "", false, outcomeAllowed},
		{409, "connection_ambiguous", false, outcomeFailed},
		{502, "vendor_unreachable", false, outcomeFailed},
		{200, codeStreamBroken, false, outcomeFailed},
		{401, "", true, outcomeReconnect},
	} {
		if got := auditOutcome(c.status, c.code, c.reconnect); got != c.want {
			t.Errorf("%d %s reconnect=%v: %s, want %s", c.status, c.code, c.reconnect, got, c.want)
		}
	}
}

// BenchmarkAuditLine: one passthrough's audit line, encoded and written to
// a file, as the audit logger does with a file output.
func BenchmarkAuditLine(b *testing.B) {
	f, _ := os.CreateTemp("", "audit")
	defer os.Remove(f.Name())
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(f), zap.InfoLevel)
	m, _ := newMetrics(nil)
	a := &AuthKit{logHash: logHasher("s"), auditLog: zap.New(core), logger: zap.NewNop(), metrics: m}
	r := httptest.NewRequest("GET", "/authkit/passthrough/x", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := &recorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: httptest.NewRecorder()}, status: 200}
	b.ReportAllocs()
	for b.Loop() {
		rq := &request{r: r, route: passthroughRoute, identified: true, caller: identity{ID: "alice", Type: "user"},
			platform: "gmail", upstreamPath: "/v1/passthrough/x", start: time.Now()}
		a.audit(rq, w, nil, false)
	}
}
