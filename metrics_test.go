package caddyauthkit

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
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

// expectMetric fails unless series has value.
func expectMetric(t *testing.T, exposition, series string, want float64) {
	t.Helper()
	got, ok := metricValue(t, exposition, series)
	if !ok {
		t.Fatalf("no series %s in:\n%s", series, authkitLines(exposition))
	}
	if got != want {
		t.Fatalf("%s = %v, want %v", series, got, want)
	}
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

	m := scrape(t)
	expectMetric(t, m, `caddy_authkit_requests_total{code="200",method="POST",route="token",server="srv0"}`, 2)
	expectMetric(t, m, `caddy_authkit_requests_total{code="200",method="POST",route="token",server="srv1"}`, 1)
	expectMetric(t, m, `caddy_authkit_requests_total{code="204",method="OPTIONS",route="token",server="srv0"}`, 1)
	expectMetric(t, m, `caddy_authkit_requests_total{code="405",method="GET",route="token",server="srv0"}`, 1)
	if _, ok := metricValue(t, m, `caddy_authkit_requests_total{code="200",method="POST",route="token",server="unknown"}`); ok {
		t.Fatal("a request was counted without its server")
	}
	expectMetric(t, m, `caddy_authkit_vendor_request_duration_seconds_count{endpoint="token",outcome="200"}`, 3)
}

// TestMetricsDenialsExistAtZeroThenCount: every denial reason is a series
// before the first denial, so a rate over it is defined.
func TestMetricsDenialsExistAtZeroThenCount(t *testing.T) {
	g := startGateway(t, nil, "")
	m := scrape(t)
	for _, reason := range denialReasons {
		expectMetric(t, m, `caddy_authkit_denials_total{reason="`+reason+`"}`, 0)
	}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}), 403, "connection_not_owned")
	expect(t, g.do(call{method: "POST", url: headerURL + "/authkit/token"}), 401, "identity_missing")
	m = scrape(t)
	expectMetric(t, m, `caddy_authkit_denials_total{reason="connection_not_owned"}`, 1)
	expectMetric(t, m, `caddy_authkit_denials_total{reason="identity_missing"}`, 1)
	expectMetric(t, m, `caddy_authkit_denials_total{reason="ticket_invalid"}`, 0)
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

	expectMetric(t, scrape(t), `caddy_authkit_vendor_calls_in_flight`, 0)
	first := make(chan response, 1)
	go func() { first <- g.as("alice", "GET", "/authkit/passthrough/x", key) }()
	<-hold.arrived
	m := scrape(t)
	expectMetric(t, m, `caddy_authkit_vendor_calls_in_flight`, 1)
	expectMetric(t, m, `caddy_authkit_overloaded_total`, 0)

	res := g.as("bob", "GET", "/authkit/connectors", nil)
	expect(t, res, 503, "overloaded")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("503 overloaded without Retry-After")
	}
	expectMetric(t, scrape(t), `caddy_authkit_overloaded_total`, 1)

	close(hold.release)
	expect(t, <-first, 200, "")
	m = scrape(t)
	expectMetric(t, m, `caddy_authkit_vendor_calls_in_flight`, 0)
	expectMetric(t, m, `caddy_authkit_requests_total{code="503",method="GET",route="connectors",server="srv0"}`, 1)
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
	expectMetric(t, m, `caddy_authkit_requests_total{code="405",method="OTHER",route="token",server="srv1"}`, 41)
	expectMetric(t, m, `caddy_authkit_errors_total{code="method_not_allowed",route="token"}`, 41)
}
