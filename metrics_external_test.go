//go:build external

// The tests of this file run Debian's Prometheus (/usr/bin/prometheus and
// promtool, which ./scripts/test installs) against the rules and the
// dashboard in deploy/: they need a program outside Go, hence the build tag
// `external`, as the Chromium and Node tests have it. They sit beside
// metrics_test.go because they test the same thing, the plugin's metrics,
// through the operator's tools.

package caddyauthkit

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// lookTool finds a Prometheus program, or fails the test saying how to get it.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: ./scripts/test installs Debian's prometheus package (apt-get install prometheus)", name)
	}
	return path
}

// TestPrometheusRulesPassPromtool: promtool accepts the rule file and its
// unit tests pass, as ./scripts/test checks too.
func TestPrometheusRulesPassPromtool(t *testing.T) {
	promtool := lookTool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// prometheusServer is a Prometheus run by a test.
type prometheusServer struct {
	t      *testing.T
	url    string
	output *lockedBuffer
}

// prometheusConfig scrapes the gateway's admin endpoint and evaluates the
// rules every second.
const prometheusConfig = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: caddy
    static_configs:
      - targets: ["localhost:2999"]
`

// startPrometheus runs Prometheus on a free port with the rules of
// deploy/prometheus, storing in a temporary directory, and returns once it
// is ready. It is stopped when the test ends.
func startPrometheus(t *testing.T) *prometheusServer {
	t.Helper()
	bin := lookTool(t, "prometheus")
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, fmt.Appendf(nil, prometheusConfig, rules), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := &prometheusServer{t: t, url: "http://" + addr, output: new(lockedBuffer)}
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = bufferWriter{p.output}, bufferWriter{p.output}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	ready := poll(t, 20*time.Second, func() bool {
		res, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	if !ready {
		t.Fatalf("Prometheus is not ready after 20s:\n%s", p.output.String())
	}
	return p
}

// bufferWriter takes a program's output into a lockedBuffer.
type bufferWriter struct{ *lockedBuffer }

func (w bufferWriter) Write(p []byte) (int, error) {
	w.WriteString(string(p))
	return len(p), nil
}

// api gets a path of Prometheus' HTTP API into data.
func (p *prometheusServer) api(path string, data any) {
	p.t.Helper()
	res, err := http.Get(p.url + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		p.t.Fatalf("%s: %v", path, err)
	}
	if body.Status != "success" {
		p.t.Fatalf("%s: %s %s", path, body.Status, body.Error)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		p.t.Fatalf("%s: %v", path, err)
	}
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (p *prometheusServer) query(q string) []promSample {
	p.t.Helper()
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	p.api("/api/v1/query?query="+url.QueryEscape(q), &data)
	return data.Result
}

// promAlert is an alert that is pending or firing.
type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p *prometheusServer) alerts() []promAlert {
	p.t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.api("/api/v1/alerts", &data)
	return data.Alerts
}

// promGroup is a rule group as Prometheus evaluates it.
type promGroup struct {
	Name           string    `json:"name"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Rules          []struct {
		Name      string `json:"name"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	} `json:"rules"`
}

func (p *prometheusServer) groups() []promGroup {
	p.t.Helper()
	var data struct {
		Groups []promGroup `json:"groups"`
	}
	p.api("/api/v1/rules", &data)
	return data.Groups
}

// evaluatedSince waits until every rule group was evaluated after t0, and
// fails the test if a rule did not evaluate cleanly.
func (p *prometheusServer) evaluatedSince(t0 time.Time) {
	p.t.Helper()
	var groups []promGroup
	ok := poll(p.t, 20*time.Second, func() bool {
		groups = p.groups()
		for _, g := range groups {
			if !g.LastEvaluation.After(t0) {
				return false
			}
		}
		return len(groups) > 0
	})
	if !ok {
		p.t.Fatalf("the rule groups were not evaluated since %v: %+v", t0, groups)
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Health != "ok" {
				p.t.Errorf("rule %s in %s: health %q, %s", r.Name, g.Name, r.Health, r.LastError)
			}
		}
	}
}

// scrapedAtLeast waits until Prometheus holds a sample of q at least n:
// traffic sent before the call has been scraped.
func (p *prometheusServer) scrapedAtLeast(q string, n float64) {
	p.t.Helper()
	var got []promSample
	ok := poll(p.t, 20*time.Second, func() bool {
		got = p.query(fmt.Sprintf("(%s) >= %g", q, n))
		return len(got) > 0
	})
	if !ok {
		p.t.Fatalf("Prometheus has no sample of %s >= %g (now %v)", q, n, p.query(q))
	}
}

// hasLabels: every label of want is on a with that value.
func (a promAlert) hasLabels(want map[string]string) bool {
	for k, v := range want {
		if a.Labels[k] != v {
			return false
		}
	}
	return true
}

// waitAlert waits until an alert with labels is in one of states, and
// returns the alerts Prometheus had then.
func (p *prometheusServer) waitAlert(labels map[string]string, states ...string) []promAlert {
	p.t.Helper()
	var alerts []promAlert
	ok := poll(p.t, 20*time.Second, func() bool {
		alerts = p.alerts()
		return slices.ContainsFunc(alerts, func(a promAlert) bool {
			return a.hasLabels(labels) && slices.Contains(states, a.State)
		})
	})
	if !ok {
		p.t.Fatalf("no alert %v in state %v; alerts: %+v\nPrometheus said:\n%s", labels, states, alerts, p.output.String())
	}
	for _, a := range alerts {
		p.t.Logf("%s %s %v", a.Labels["alertname"], a.State, a.Labels)
	}
	return alerts
}

// noAlert fails the test if an alert with labels is pending or firing.
func noAlert(t *testing.T, alerts []promAlert, labels map[string]string) {
	t.Helper()
	for _, a := range alerts {
		if a.hasLabels(labels) {
			t.Errorf("alert %v is %s, and must not be: %+v", labels, a.State, a.Labels)
		}
	}
}

// TestPrometheusAlertsOnSandboxFaults: a real Prometheus scrapes a real
// Caddy every second with deploy/prometheus's rules. Ordinary traffic
// fires nothing; then the sandboxed vendor rejects the secret (401), then
// fails (500), then someone tries another user's connection key, and the
// matching alerts go pending or firing (pending: their `for:` has not run
// out), and only those. Finally every dashboard query answers with data.
func TestPrometheusAlertsOnSandboxFaults(t *testing.T) {
	g := startGateway(t, nil, "")
	p := startPrometheus(t)
	gateway := map[string]string{"job": "caddy", "instance": "localhost:2999"}
	with := func(labels map[string]string) map[string]string {
		all := maps.Clone(gateway)
		maps.Copy(all, labels)
		return all
	}
	p.scrapedAtLeast(`up{job="caddy"}`, 1)

	// Ordinary traffic: a token by ticket, connections, connectors, and
	// passthrough twice (an ownership miss, then a hit); a 503 from the
	// vendor that the retry absorbs.
	byTicket := g.ticketFor("alice")
	token := func() response {
		return g.do(call{method: "POST", url: ticketURL + "/authkit/token", header: byTicket})
	}
	expect(t, token(), 200, "")
	g.pica.SetFault(sandbox.EndpointVaultList, sandbox.Fault{Status: 503, Times: 1})
	expect(t, g.as("alice", "GET", "/authkit/connections", nil), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/connectors", nil), 200, "")
	own := map[string]string{"X-Pica-Connection-Key": g.alice.Key}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", own), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", own), 200, "")
	p.scrapedAtLeast(`sum(caddy_authkit_requests_total)`, 6)
	p.evaluatedSince(time.Now())
	noAlert(t, p.alerts(), map[string]string{})

	// The vendor rejects the secret: a handful of token calls, once. The
	// error series is new, so this is the rule's "appeared" branch.
	g.pica.SetFault(sandbox.EndpointToken, sandbox.Fault{Status: 401})
	for range 5 {
		expect(t, token(), 502, "vendor_rejected_secret")
	}
	alerts := p.waitAlert(with(map[string]string{"alertname": "AuthKitVendorSecretRejected", "severity": "critical"}), "firing")
	noAlert(t, alerts, map[string]string{"alertname": "AuthKitVendorErrors"}) // a 401 is not the vendor failing
	g.pica.ClearFaults()

	// The vendor fails: every vault lookup answers 500 (not retried). An
	// outage goes on: failures before and after one scrape.
	g.pica.SetFault(sandbox.EndpointVaultList, sandbox.Fault{Status: 500})
	failConnections := func() {
		for range 10 {
			expect(t, g.as("alice", "GET", "/authkit/connections", nil), 502, "vendor_unavailable")
		}
	}
	failConnections()
	p.scrapedAtLeast(`caddy_authkit_vendor_request_duration_seconds_count{endpoint="vault_list",outcome="500"}`, 10)
	failConnections()
	alerts = p.waitAlert(with(map[string]string{"alertname": "AuthKitVendorErrors", "endpoint": "vault_list", "severity": "critical"}), "pending", "firing")
	noAlert(t, alerts, map[string]string{"alertname": "AuthKitVendorErrors", "endpoint": "token"})
	g.pica.ClearFaults()

	// Someone tries bob's connection key, 30 times.
	for range 30 {
		expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}), 403, "connection_not_owned")
	}
	alerts = p.waitAlert(with(map[string]string{"alertname": "AuthKitOwnershipDenialSpike", "reason": "connection_not_owned"}), "pending", "firing")
	for _, name := range []string{"AuthKitVendorSlow", "AuthKitVendorRateLimited", "AuthKitOverloaded", "AuthKitEventsDropped", "AuthKitReconnectSignalsRising"} {
		noAlert(t, alerts, map[string]string{"alertname": name})
	}
	p.evaluatedSince(time.Now()) // and no rule failed to evaluate

	// Every query of the dashboard, its variables resolved, has data.
	for _, panel := range readDashboard(t).panels() {
		for i, target := range panel.Targets {
			q := strings.NewReplacer(`$instance`, `.*`, `$server`, `.*`, `$__rate_interval`, `1m`).Replace(target.Expr)
			if got := p.query(q); len(got) == 0 {
				t.Errorf("panel %q target %d has no data: %s", panel.Title, i, q)
			}
		}
	}
}
