package caddyauthkit

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// scrape returns the gateway's Prometheus exposition from the admin API.
func scrape(t *testing.T) string {
	t.Helper()
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue is the value of one series, written as in the exposition
// (labels in alphabetical order); ok is false when the series is absent.
func metricValue(t *testing.T, exposition, series string) (float64, bool) {
	t.Helper()
	for line := range strings.SplitSeq(exposition, "\n") {
		if rest, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v, true
		}
	}
	return 0, false
}

// expectMetric fails unless series comes to have value want. A request is
// counted once its handler returns, which a client may see its answer
// before (a body over net/http's buffer is on the wire by then): the
// exposition is read until it agrees or a few seconds have passed.
func expectMetric(t *testing.T, series string, want float64) {
	t.Helper()
	var exposition string
	var got float64
	var ok bool
	if poll(t, 5*time.Second, func() bool {
		exposition = scrape(t)
		got, ok = metricValue(t, exposition, series)
		return ok && got == want
	}) {
		return
	}
	if !ok {
		t.Fatalf("no series %s in:\n%s", series, authkitLines(exposition))
	}
	t.Fatalf("%s = %v, want %v", series, got, want)
}

func authkitLines(exposition string) string {
	var out []string
	for line := range strings.SplitSeq(exposition, "\n") {
		if strings.HasPrefix(line, "caddy_authkit_") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestMetricsLabelRequestsByServerRouteMethodAndCode: each site is its own
// server; a preflight counts as OPTIONS 204, an error by its status.
func TestMetricsLabelRequestsByServerRouteMethodAndCode(t *testing.T) {
	g := startGateway(t, nil, "")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	expect(t, g.as("alice", "POST", "/authkit/token", nil), 200, "")
	expect(t, g.do(call{method: "POST", url: headerURL + "/authkit/token",
		header: map[string]string{"X-Auth-User": "carol", "X-Auth-Type": "user"}}), 200, "")
	preflight := g.do(call{method: "OPTIONS", url: appURL + "/authkit/token", header: map[string]string{
		"Origin": "https://authkit.picaos.com", "Access-Control-Request-Method": "POST"}})
	if preflight.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: %d", preflight.StatusCode)
	}
	expect(t, g.as("alice", "GET", "/authkit/token", nil), 405, "method_not_allowed")

	expectMetric(t, `caddy_authkit_requests_total{code="200",method="POST",route="token",server="srv0"}`, 2)
	expectMetric(t, `caddy_authkit_requests_total{code="200",method="POST",route="token",server="srv1"}`, 1)
	expectMetric(t, `caddy_authkit_requests_total{code="204",method="OPTIONS",route="token",server="srv0"}`, 1)
	expectMetric(t, `caddy_authkit_requests_total{code="405",method="GET",route="token",server="srv0"}`, 1)
	if _, ok := metricValue(t, scrape(t), `caddy_authkit_requests_total{code="200",method="POST",route="token",server="unknown"}`); ok {
		t.Fatal("a request was counted without its server")
	}
	expectMetric(t, `caddy_authkit_vendor_request_duration_seconds_count{endpoint="token",outcome="200"}`, 3)
}

// TestMetricsDenialsExistAtZeroThenCount: every denial reason is a series
// before the first denial, so a rate over it is defined.
func TestMetricsDenialsExistAtZeroThenCount(t *testing.T) {
	g := startGateway(t, nil, "")
	for _, reason := range denialReasons {
		expectMetric(t, `caddy_authkit_denials_total{reason="`+reason+`"}`, 0)
	}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}), 403, "connection_not_owned")
	expect(t, g.do(call{method: "POST", url: headerURL + "/authkit/token"}), 401, "identity_missing")
	expectMetric(t, `caddy_authkit_denials_total{reason="connection_not_owned"}`, 1)
	expectMetric(t, `caddy_authkit_denials_total{reason="identity_missing"}`, 1)
	expectMetric(t, `caddy_authkit_denials_total{reason="ticket_invalid"}`, 0)
}

// holdPassthrough is a vendor that holds every passthrough call until
// released, telling the test when one has arrived.
type holdPassthrough struct {
	arrived, release chan struct{}
}

func (h holdPassthrough) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/passthrough/") {
			h.arrived <- struct{}{}
			<-h.release
		}
		next.ServeHTTP(w, r)
	})
}

// TestMetricsInFlightAndOverloaded: a call held at the vendor is in flight;
// with max_concurrent 1 the next is a 503 counted as overloaded; once the
// call is answered nothing is in flight.
func TestMetricsInFlightAndOverloaded(t *testing.T) {
	hold := holdPassthrough{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	g := startGatewayWith(t, vendorSetup{wrap: hold.wrap}, "max_concurrent 1\n\t\townership off")
	key := map[string]string{"X-Pica-Connection-Key": g.alice.Key}

	expectMetric(t, `caddy_authkit_vendor_calls_in_flight`, 0)
	first := make(chan response, 1)
	go func() { first <- g.as("alice", "GET", "/authkit/passthrough/x", key) }()
	<-hold.arrived
	expectMetric(t, `caddy_authkit_vendor_calls_in_flight`, 1)
	expectMetric(t, `caddy_authkit_overloaded_total`, 0)

	res := g.as("bob", "GET", "/authkit/connectors", nil)
	expect(t, res, 503, "overloaded")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("503 overloaded without Retry-After")
	}
	expectMetric(t, `caddy_authkit_overloaded_total`, 1)

	close(hold.release)
	expect(t, <-first, 200, "")
	expectMetric(t, `caddy_authkit_vendor_calls_in_flight`, 0)
	expectMetric(t, `caddy_authkit_requests_total{code="503",method="GET",route="connectors",server="srv0"}`, 1)
}

// seriesOf counts the series of one metric in an exposition.
func seriesOf(exposition, name string) int {
	n := 0
	for line := range strings.SplitSeq(exposition, "\n") {
		if strings.HasPrefix(line, name+"{") {
			n++
		}
	}
	return n
}

// TestMetricsMadeUpMethodsAddNoSeries: 40 made-up methods, sent without
// signing in to every route, end in one OTHER series per route and status,
// as Caddy's own metrics fold them: a client cannot grow Caddy's memory.
func TestMetricsMadeUpMethodsAddNoSeries(t *testing.T) {
	g := startGateway(t, nil, "")
	paths := []string{"/authkit/token", "/authkit/ticket", "/authkit/connections", "/authkit/connections/x",
		"/authkit/connectors", "/authkit/passthrough/x", "/authkit/nowhere"}
	send := func(method string) {
		for _, path := range paths {
			g.do(call{method: method, url: headerURL + path})
		}
	}
	send("BREW")
	before := seriesOf(scrape(t), "caddy_authkit_requests_total")
	for i := range 40 {
		send(fmt.Sprintf("MADEUP%d", i))
	}
	m := scrape(t)
	if after := seriesOf(m, "caddy_authkit_requests_total"); after != before {
		t.Fatalf("made-up methods grew caddy_authkit_requests_total from %d to %d series:\n%s", before, after, authkitLines(m))
	}
	if strings.Contains(m, `method="MADEUP`) || strings.Contains(m, `method="BREW"`) {
		t.Fatalf("a client's method is a label value:\n%s", authkitLines(m))
	}
	expectMetric(t, `caddy_authkit_requests_total{code="405",method="OTHER",route="token",server="srv1"}`, 41)
	expectMetric(t, `caddy_authkit_errors_total{code="method_not_allowed",route="token"}`, 41)
}

// The operations kit: deploy/prometheus (alert and recording rules, their
// promtool unit tests) and deploy/grafana (the dashboard) name series and
// labels by hand. The tests below hold them to what the plugin exports.
const (
	rulesFile     = "deploy/prometheus/authkit.rules.yml"
	rulesTestFile = "deploy/prometheus/authkit.rules.test.yml"
	dashboardFile = "deploy/grafana/authkit-dashboard.json"
	runbookFile   = "docs/operations.md"
)

// targetLabels are the labels Prometheus adds to every scraped series: an
// expression may use them although the exposition does not have them.
var targetLabels = []string{"job", "instance"}

// ruleFile is a Prometheus rule file, as far as the tests read it.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return rules
}

// dashboard is the Grafana dashboard, as far as the tests read it.
type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Templating struct {
		List []struct {
			Name       string     `json:"name"`
			Type       string     `json:"type"`
			Datasource datasource `json:"datasource"`
			Query      struct {
				Query string `json:"query"`
			} `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		Datasource   datasource `json:"datasource"`
		Expr         string     `json:"expr"`
		LegendFormat string     `json:"legendFormat"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panels are the dashboard's panels, those in collapsed rows included.
func (d dashboard) panels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// labelSet is a series' labels, each with the values seen; nil values are
// not known (a target label).
type labelSet map[string]map[string]bool

// parseExposition reads the series of Prometheus' text format into each
// name's labels and their values. Histograms' _bucket, _count and _sum are
// names of their own, as PromQL sees them.
func parseExposition(t *testing.T, exposition string) map[string]labelSet {
	t.Helper()
	series := map[string]labelSet{}
	for line := range strings.SplitSeq(exposition, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			t.Fatalf("exposition line %q", line)
		}
		name, rest := line[:end], line[end:]
		labels := series[name]
		if labels == nil {
			labels = labelSet{}
			series[name] = labels
		}
		if rest[0] != '{' {
			continue
		}
		rest = rest[1:]
		for rest != "" && rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				t.Fatalf("exposition line %q", line)
			}
			label := rest[:eq]
			var value strings.Builder
			i := eq + 2
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				value.WriteByte(rest[i])
			}
			if labels[label] == nil {
				labels[label] = map[string]bool{}
			}
			labels[label][value.String()] = true
			rest = strings.TrimPrefix(rest[min(i+1, len(rest)):], ",")
		}
	}
	return series
}

// promToken is a token of a PromQL expression.
type promToken struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, 'p' punctuation, 'v' a Grafana $variable
	text string
}

// lexPromQL splits a PromQL expression into tokens. Range and subquery
// brackets are skipped whole: they hold durations and Grafana's
// $__rate_interval, never a series or a label.
func lexPromQL(t *testing.T, expr string) []promToken {
	t.Helper()
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	var toks []promToken
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // a comment, to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '[':
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				t.Fatalf("unclosed [ in %q", expr)
			}
			i += j + 1
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				t.Fatalf("unclosed string in %q", expr)
			}
			raw := expr[i+1 : j]
			if c == '"' {
				s, err := strconv.Unquote(expr[i : j+1])
				if err != nil {
					t.Fatalf("string %s in %q: %v", expr[i:j+1], expr, err)
				}
				raw = s
			}
			toks = append(toks, promToken{'s', raw})
			i = j + 1
		case c == '$':
			j := i + 1
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			toks = append(toks, promToken{'v', expr[i:j]})
			i = j
		case isIdent(c, true):
			j := i + 1
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			toks = append(toks, promToken{'i', expr[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i + 1
			for j < len(expr) && (expr[j] == '.' || isIdent(expr[j], false)) {
				j++
			}
			toks = append(toks, promToken{'n', expr[i:j]})
			i = j
		default:
			op := expr[i : i+1]
			if i+1 < len(expr) {
				switch two := expr[i : i+2]; two {
				case "!=", "=~", "!~", "==", ">=", "<=":
					op = two
				}
			}
			toks = append(toks, promToken{'p', op})
			i += len(op)
		}
	}
	// Parentheses and braces must pair up; a real Prometheus parses the
	// rest (metrics_external_test.go).
	var open []string
	for _, tok := range toks {
		switch {
		case tok.kind != 'p':
		case tok.text == "(" || tok.text == "{":
			open = append(open, tok.text)
		case tok.text == ")" || tok.text == "}":
			want := map[string]string{")": "(", "}": "{"}[tok.text]
			if len(open) == 0 || open[len(open)-1] != want {
				t.Fatalf("unbalanced %s in %q", tok.text, expr)
			}
			open = open[:len(open)-1]
		}
	}
	if len(open) > 0 {
		t.Fatalf("unclosed %s in %q", open[len(open)-1], expr)
	}
	return toks
}

// promMatcher is a label matcher of a selector.
type promMatcher struct {
	metric, label, op, value string
}

// promRefs are what an expression names.
type promRefs struct {
	metrics  []string
	matchers []promMatcher
	// grouping are the labels of by, without, on, ignoring, group_left
	// and group_right clauses.
	grouping []string
	// quantile: the expression takes histogram_quantile, which drops le.
	quantile bool
}

// promKeywords are the operators and aggregations written as words: never
// a series, whatever follows them (sum by (...) (...)).
var promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true,
	"atan2": true, "inf": true, "nan": true, "Inf": true, "NaN": true,
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "group": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true}
var promGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

// parseRefs finds the series, matchers and grouping labels of a PromQL
// expression.
func parseRefs(t *testing.T, expr string) promRefs {
	t.Helper()
	toks := lexPromQL(t, expr)
	is := func(i int, kind byte, text string) bool {
		return i < len(toks) && toks[i].kind == kind && toks[i].text == text
	}
	var refs promRefs
	matchers := func(i int, metric string) int { // i is at "{"; returns the index after "}"
		for i++; i < len(toks) && !is(i, 'p', "}"); {
			if i+2 >= len(toks) || toks[i].kind != 'i' || toks[i+1].kind != 'p' || toks[i+2].kind != 's' {
				t.Fatalf("cannot read the matchers of %s in %q", metric, expr)
			}
			refs.matchers = append(refs.matchers, promMatcher{metric, toks[i].text, toks[i+1].text, toks[i+2].text})
			i += 3
			if is(i, 'p', ",") {
				i++
			}
		}
		return i + 1
	}
	for i := 0; i < len(toks); {
		tok := toks[i]
		switch {
		case tok.kind == 'p' && tok.text == "{":
			t.Fatalf("a selector without a metric name in %q", expr)
		case tok.kind != 'i' || promKeywords[tok.text]:
			i++
		case promGrouping[tok.text]:
			i++
			if is(i, 'p', "(") {
				for i++; i < len(toks) && !is(i, 'p', ")"); i++ {
					if toks[i].kind == 'i' {
						refs.grouping = append(refs.grouping, toks[i].text)
					}
				}
				i++
			}
		case is(i+1, 'p', "("): // a function or an aggregation
			refs.quantile = refs.quantile || tok.text == "histogram_quantile"
			i++
		default:
			refs.metrics = append(refs.metrics, tok.text)
			i++
			if is(i, 'p', "{") {
				i = matchers(i, tok.text)
			}
		}
	}
	return refs
}

// seriesCatalog knows the labels of every series an expression may name:
// those scraped from a running Caddy and the recording rules.
type seriesCatalog struct {
	scraped   map[string]labelSet
	recorded  map[string]labelSet
	recording map[string]promRefs // a recording rule's expression
}

// labels are the labels of a series, target labels included; ok is false
// for a series that neither the plugin exports nor a rule records.
func (c seriesCatalog) labels(name string) (labelSet, bool) {
	if l, ok := c.recorded[name]; ok {
		return l, true
	}
	l, ok := c.scraped[name]
	if !ok {
		return nil, false
	}
	with := labelSet{}
	maps.Copy(with, l)
	for _, target := range targetLabels {
		with[target] = nil
	}
	return with, true
}

// outputLabels are the labels of an expression's result: its grouping
// labels when it aggregates (le dropped by histogram_quantile), else the
// labels of the series it names.
func (c seriesCatalog) outputLabels(refs promRefs) map[string]bool {
	out := map[string]bool{}
	if len(refs.grouping) > 0 {
		for _, l := range refs.grouping {
			out[l] = true
		}
		if refs.quantile {
			delete(out, "le")
		}
		return out
	}
	for _, m := range refs.metrics {
		l, _ := c.labels(m)
		for name := range l {
			out[name] = true
		}
	}
	return out
}

// check fails the test for every series, label or label value in expr that
// a running Caddy does not export, and returns expr's output labels.
func (c seriesCatalog) check(t *testing.T, where, expr string) map[string]bool {
	t.Helper()
	refs := parseRefs(t, expr)
	if len(refs.metrics) == 0 {
		t.Errorf("%s: no series in %q", where, expr)
	}
	for _, m := range refs.metrics {
		if _, ok := c.labels(m); !ok {
			t.Errorf("%s: %s is neither exported by the plugin nor recorded by %s", where, m, rulesFile)
		} else if !strings.HasPrefix(m, "caddy_authkit_") && !strings.Contains(m, ":") {
			t.Errorf("%s: %s is not one of the plugin's series", where, m)
		}
	}
	for _, mt := range refs.matchers {
		labels, ok := c.labels(mt.metric)
		if !ok {
			continue
		}
		values, has := labels[mt.label]
		switch {
		case !has:
			t.Errorf("%s: %s has no label %s", where, mt.metric, mt.label)
		case values == nil || strings.Contains(mt.value, "$"):
			// a target label, or a dashboard variable
		case mt.op == "=" || mt.op == "!=":
			if !values[mt.value] {
				t.Errorf("%s: %s{%s%s%q}: no such value in %v", where, mt.metric, mt.label, mt.op, mt.value, slices.Sorted(maps.Keys(values)))
			}
		default:
			re, err := regexp.Compile("^(?:" + mt.value + ")$")
			if err != nil {
				t.Errorf("%s: %s{%s%s%q}: %v", where, mt.metric, mt.label, mt.op, mt.value, err)
				continue
			}
			if !slices.ContainsFunc(slices.Collect(maps.Keys(values)), re.MatchString) {
				t.Errorf("%s: %s{%s%s%q} matches none of %v", where, mt.metric, mt.label, mt.op, mt.value, slices.Sorted(maps.Keys(values)))
			}
		}
	}
	for _, g := range refs.grouping {
		found := false
		for _, m := range refs.metrics {
			if l, _ := c.labels(m); l != nil {
				_, has := l[g]
				found = found || has
			}
		}
		if !found {
			t.Errorf("%s: no series in %q has the label %s it groups by", where, expr, g)
		}
	}
	return c.outputLabels(refs)
}

// record adds a recording rule: its labels are its expression's output
// labels, with the values its source series have.
func (c seriesCatalog) record(t *testing.T, r rule) {
	t.Helper()
	out := c.check(t, "recording rule "+r.Record, r.Expr)
	refs := parseRefs(t, r.Expr)
	labels := labelSet{}
	for l := range out {
		if slices.Contains(targetLabels, l) {
			labels[l] = nil
			continue
		}
		values := map[string]bool{}
		for _, m := range refs.metrics {
			src, _ := c.labels(m)
			maps.Copy(values, src[l])
		}
		labels[l] = values
	}
	c.recorded[r.Record] = labels
	c.recording[r.Record] = refs
}

var templateLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
var annotationLabel = regexp.MustCompile(`\$labels\.(\w+)`)

// checkOutput fails unless every label a legend or an annotation names is
// a label of the expression's result.
func checkOutput(t *testing.T, where string, out map[string]bool, names [][]string) {
	t.Helper()
	for _, n := range names {
		if !out[n[1]] {
			t.Errorf("%s: %s is not a label of the result (%v)", where, n[1], slices.Sorted(maps.Keys(out)))
		}
	}
}

// TestMetricsRulesAndDashboardUseExportedSeries: every series, label and
// label value that the alert and recording rules and the Grafana dashboard
// name is in a running Caddy's /metrics (recording rules are checked
// through the series they record), every label a legend or an alert's
// annotation prints is in its expression's result, and every metric the
// plugin exports is on the dashboard. A misspelt name would otherwise
// make an alert that never fires or a panel that stays empty.
func TestMetricsRulesAndDashboardUseExportedSeries(t *testing.T) {
	rules, dash := readRules(t), readDashboard(t)
	g := startGateway(t, nil, "")

	// Traffic that makes each series and label value the rules name exist:
	// a token by ticket, connections, connectors, passthrough (an ownership
	// miss, then a hit, then someone else's key), and the vendor's failures
	// (its 401, 500, 429, and a 503 that is retried).
	byTicket := g.ticketFor("alice")
	token := func() response {
		return g.do(call{method: "POST", url: ticketURL + "/authkit/token", header: byTicket})
	}
	expect(t, token(), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/connectors", nil), 200, "")
	own := map[string]string{"X-Pica-Connection-Key": g.alice.Key}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", own), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", own), 200, "")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}), 403, "connection_not_owned")
	g.pica.SetFault(sandbox.EndpointToken, sandbox.Fault{Status: 401, Times: 1})
	expect(t, token(), 502, "vendor_rejected_secret")
	g.pica.SetFault(sandbox.EndpointVaultList, sandbox.Fault{Status: 500, Times: 1})
	expect(t, g.as("alice", "GET", "/authkit/connections", nil), 502, "vendor_unavailable")
	g.pica.SetFault(sandbox.EndpointVaultList, sandbox.Fault{Status: 429, Times: 1})
	expect(t, g.as("alice", "GET", "/authkit/connections", nil), 429, "vendor_rate_limited")
	g.pica.SetFault(sandbox.EndpointVaultList, sandbox.Fault{Status: 503, Times: 1})
	expect(t, g.as("alice", "GET", "/authkit/connections", nil), 200, "")

	exposition := scrape(t)
	c := seriesCatalog{scraped: parseExposition(t, exposition), recorded: map[string]labelSet{}, recording: map[string]promRefs{}}
	for name := range c.scraped {
		if !strings.HasPrefix(name, "caddy_authkit_") {
			delete(c.scraped, name) // Caddy's own series are not the plugin's
		}
	}

	// Rules, in file order: a recording rule is known to the rules after it.
	for _, r := range rules {
		if r.Record != "" {
			c.record(t, r)
		}
	}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		where := "alert " + r.Alert
		out := c.check(t, where, r.Expr)
		for name, text := range r.Annotations {
			checkOutput(t, where+" annotation "+name, out, annotationLabel.FindAllStringSubmatch(text, -1))
		}
	}

	// The dashboard.
	used := map[string]bool{}
	var use func(name string)
	use = func(name string) {
		used[name] = true
		for _, src := range c.recording[name].metrics {
			use(src)
		}
	}
	for _, p := range dash.panels() {
		for i, target := range p.Targets {
			where := fmt.Sprintf("panel %q target %d", p.Title, i)
			out := c.check(t, where, target.Expr)
			checkOutput(t, where+" legend", out, templateLabel.FindAllStringSubmatch(target.LegendFormat, -1))
			for _, m := range parseRefs(t, target.Expr).metrics {
				use(m)
			}
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := "variable " + v.Name
		q, ok := strings.CutPrefix(v.Query.Query, "label_values(")
		comma := strings.LastIndexByte(q, ',')
		if !ok || comma < 0 || !strings.HasSuffix(q, ")") {
			t.Errorf("%s: %q is not label_values(series, label)", where, v.Query.Query)
			continue
		}
		selector, label := q[:comma], strings.TrimSpace(strings.TrimSuffix(q[comma+1:], ")"))
		c.check(t, where, selector)
		for _, m := range parseRefs(t, selector).metrics {
			if l, _ := c.labels(m); l != nil {
				if _, has := l[label]; !has {
					t.Errorf("%s: %s has no label %s", where, m, label)
				}
			}
		}
	}
	for line := range strings.SplitSeq(exposition, "\n") {
		fields := strings.Fields(line)
		if len(fields) != 4 || fields[0] != "#" || fields[1] != "TYPE" || !strings.HasPrefix(fields[2], "caddy_authkit_") {
			continue
		}
		family := fields[2]
		if !used[family] && !used[family+"_bucket"] && !used[family+"_count"] && !used[family+"_sum"] {
			t.Errorf("the dashboard does not show %s", family)
		}
	}
}

// TestMetricsDashboardImportsAnywhere: the dashboard's datasource is an
// input (${DS_PROMETHEUS}) on every panel, target and variable, and it has
// the server variable, which its panels use.
func TestMetricsDashboardImportsAnywhere(t *testing.T) {
	dash := readDashboard(t)
	const uid = "${DS_PROMETHEUS}"
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" || dash.Inputs[0].Type != "datasource" || dash.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v, want one Prometheus datasource input DS_PROMETHEUS", dash.Inputs)
	}
	prometheus := datasource{Type: "prometheus", UID: uid}
	serverUsed := false
	for _, p := range dash.panels() {
		if p.Type == "row" {
			continue
		}
		if p.Datasource != prometheus {
			t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, prometheus)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			if target.Datasource != prometheus {
				t.Errorf("panel %q: target datasource %+v, want %+v", p.Title, target.Datasource, prometheus)
			}
			serverUsed = serverUsed || strings.Contains(target.Expr, `server=~"$server"`)
		}
	}
	variables := map[string]bool{}
	for _, v := range dash.Templating.List {
		variables[v.Name] = true
		if v.Datasource != prometheus {
			t.Errorf("variable %s: datasource %+v, want %+v", v.Name, v.Datasource, prometheus)
		}
	}
	if !variables["server"] || !serverUsed {
		t.Errorf("the dashboard has no server variable that its panels use")
	}
}

// runbookAnchors are the anchors GitHub gives the headings of a Markdown
// file: lower case, punctuation but - and _ removed, spaces as -.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var a strings.Builder
		for _, r := range heading {
			switch {
			case r == ' ':
				a.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				a.WriteRune(r)
			}
		}
		anchors[a.String()] = true
	}
	return anchors
}

// TestMetricsAlertsHaveRunbooksAndTests: every alert has a severity, a
// summary, a description and a runbook link to its own section of
// docs/operations.md, and the promtool unit tests have, for each alert, a
// time where it fires and one where it must not.
func TestMetricsAlertsHaveRunbooksAndTests(t *testing.T) {
	anchors := runbookAnchors(t)
	const runbookURL = "https://github.com/caddyauthkit/caddyauthkit/blob/main/" + runbookFile + "#"
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				silent[at.Alertname] = true
			}
		}
	}
	alerts := 0
	for _, r := range readRules(t) {
		if r.Alert == "" {
			continue
		}
		alerts++
		if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
			t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s has no %s", r.Alert, a)
			}
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookURL)
		if !ok || anchor != strings.ToLower(r.Alert) || !anchors[anchor] {
			t.Errorf("%s: runbook %q, want %s%s and a section headed %q in %s", r.Alert, r.Annotations["runbook_url"],
				runbookURL, strings.ToLower(r.Alert), r.Alert, runbookFile)
		}
		if !fires[r.Alert] || !silent[r.Alert] {
			t.Errorf("%s: %s needs a case where it fires and one where it must not (fires %v, silent %v)",
				r.Alert, rulesTestFile, fires[r.Alert], silent[r.Alert])
		}
	}
	if alerts == 0 {
		t.Fatalf("%s has no alerts", rulesFile)
	}
	if !anchors["tracing"] {
		t.Errorf("%s has no Tracing section", runbookFile)
	}
}
