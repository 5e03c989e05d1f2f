package caddyauthkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

func init() {
	caddy.RegisterModule(testRecorder{})
}

// recorded receives every event the test recorder handles.
var recorded = make(chan caddy.Event, 4096)

// recorderGate, when not nil, holds the recorder until it is closed: a
// slow event handler.
var recorderGate atomic.Pointer[chan struct{}]

// testRecorder is a test-only event handler that hands events to the test.
type testRecorder struct{}

func (testRecorder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "events.handlers.authkit_test_recorder", New: func() caddy.Module { return new(testRecorder) }}
}

func (testRecorder) Handle(_ context.Context, e caddy.Event) error {
	if gate := recorderGate.Load(); gate != nil {
		<-*gate
	}
	select {
	case recorded <- e:
	default:
	}
	return nil
}

// drainEvents forgets events of earlier tests.
func drainEvents() {
	for {
		select {
		case <-recorded:
		default:
			return
		}
	}
}

// waitEvent returns the next recorded event named name (others are
// skipped); the deadline only turns a missing event into a failure.
func waitEvent(t *testing.T, name string) caddy.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-recorded:
			if e.Name() == name {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event", name)
		}
	}
}

// runWithRecorder adapts caddyfile, subscribes the recorder to events, and
// runs it.
func runWithRecorder(t *testing.T, caddyfile string, events ...string) *caddytest.Tester {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["apps"].(map[string]any)["events"] = map[string]any{
		"subscriptions": []any{map[string]any{
			"events":   events,
			"handlers": []any{map[string]any{"handler": "authkit_test_recorder"}},
		}},
	}
	out, _ := json.Marshal(cfg)
	drainEvents()
	tester := caddytest.NewTester(t)
	tester.InitServer(string(out), "json")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// startGatewayWithEvents is startGateway with the recorder subscribed to
// every authkit event.
func startGatewayWithEvents(t *testing.T, options string) *gateway {
	t.Helper()
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	g := &gateway{t: t, pica: pica}
	g.alice = pica.AddConnection("alice", "user", "gmail")
	g.bob = pica.AddConnection("bob", "user", "slack")
	upstream := httptest.NewServer(pica)
	t.Cleanup(upstream.Close)
	g.picaURL = upstream.URL
	g.tester = runWithRecorder(t, fmt.Sprintf(gatewayConfig, logFile, aliceHash, bobHash, upstream.URL, options),
		eventPassthrough, eventConnectionDeleted, eventDenied, eventTicketIssued, eventReconnect)
	pica.ResetRequests()
	return g
}

var hashPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// checkFacts fails unless e's data is about route with outcome and status,
// names the caller only as a hash, and holds no key and no secret.
func checkFacts(t *testing.T, g *gateway, e caddy.Event, route, outcome string, status int) {
	t.Helper()
	d := e.Data
	if d["route"] != route || d["outcome"] != outcome || d["status"] != status {
		t.Fatalf("%s: route %v outcome %v status %v, want %s %s %d", e.Name(), d["route"], d["outcome"], d["status"], route, outcome, status)
	}
	if id, _ := d["identity"].(string); !hashPattern.MatchString(id) || d["identity_type"] != "user" {
		t.Fatalf("%s: identity %v of type %v, want a keyed hash of a user", e.Name(), d["identity"], d["identity_type"])
	}
	if rid, _ := d["uuid"].(string); rid == "" {
		t.Fatalf("%s: no request id", e.Name())
	}
	encoded, _ := json.Marshal(d)
	for _, secret := range []string{g.alice.Key, g.bob.Key, testSecret, `"alice"`, `"bob"`} {
		if strings.Contains(string(encoded), secret) {
			t.Fatalf("%s data holds %q: %s", e.Name(), secret, encoded)
		}
	}
}

func TestEventsTellWhatHappened(t *testing.T) {
	g := startGatewayWithEvents(t, "")

	res := g.as("alice", "GET", "/authkit/passthrough/gmail/v1/users/me", map[string]string{"X-AuthKit-Connection": "gmail"})
	expect(t, res, http.StatusOK, "")
	e := waitEvent(t, eventPassthrough)
	checkFacts(t, g, e, "passthrough", outcomeAllowed, http.StatusOK)
	if e.Data["platform"] != "gmail" || e.Data["connection_id"] != g.alice.ID || e.Data["path"] != "/v1/passthrough/gmail/v1/users/me" ||
		e.Data["method"] != "GET" || e.Data["size"] != int64(len(res.body)) {
		t.Fatalf("passthrough facts %v; answer was %d bytes", e.Data, len(res.body))
	}
	aliceHash := e.Data["identity"]

	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}), http.StatusForbidden, "connection_not_owned")
	e = waitEvent(t, eventDenied)
	checkFacts(t, g, e, "passthrough", outcomeDenied, http.StatusForbidden)
	if e.Data["code"] != "connection_not_owned" || e.Data["identity"] != aliceHash {
		t.Fatalf("denial facts %v", e.Data)
	}

	expect(t, g.as("alice", "POST", "/authkit/ticket", nil), http.StatusOK, "")
	checkFacts(t, g, waitEvent(t, eventTicketIssued), "ticket", outcomeAllowed, http.StatusOK)

	// Bob deleting alice's connection is a denial; alice deleting it is not.
	expect(t, g.as("bob", "DELETE", "/authkit/connections/"+g.alice.ID, nil), http.StatusNotFound, "connection_not_found")
	e = waitEvent(t, eventDenied)
	checkFacts(t, g, e, "connection", outcomeDenied, http.StatusNotFound)
	if e.Data["identity"] == aliceHash {
		t.Fatal("bob and alice have the same identity hash")
	}
	expect(t, g.as("alice", "DELETE", "/authkit/connections/"+g.alice.ID, nil), http.StatusOK, "")
	e = waitEvent(t, eventConnectionDeleted)
	checkFacts(t, g, e, "connection", outcomeAllowed, http.StatusOK)
	if e.Data["connection_id"] != g.alice.ID || e.Data["platform"] != "gmail" {
		t.Fatalf("deletion facts %v", e.Data)
	}

	// A denial is an event on any route, also one whose allowed requests
	// are not (the list of connections).
	expect(t, g.do(call{method: "GET", url: headerURL + "/authkit/connections"}), http.StatusUnauthorized, "identity_missing")
	e = waitEvent(t, eventDenied)
	if e.Data["route"] != "connections" || e.Data["code"] != "identity_missing" || e.Data["status"] != http.StatusUnauthorized {
		t.Fatalf("the list's denial: %v", e.Data)
	}
}

func TestReconnectIsSignalledToTheBrowserAndAsAnEvent(t *testing.T) {
	g := startGatewayWithEvents(t, "")
	res := g.as("bob", "GET", "/authkit/passthrough/slack/api/auth.test?__status=401", map[string]string{
		"X-Pica-Connection-Key": g.bob.Key, "Origin": "http://app.test"})
	expect(t, res, http.StatusUnauthorized, "")
	if got := res.Header.Get("AuthKit-Reconnect"); got != "slack" {
		t.Fatalf("AuthKit-Reconnect %q, want slack", got)
	}
	if exposed := res.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exposed, "AuthKit-Reconnect") {
		t.Fatalf("the browser cannot read AuthKit-Reconnect: exposed %q", exposed)
	}
	checkFacts(t, g, waitEvent(t, eventPassthrough), "passthrough", outcomeReconnect, http.StatusUnauthorized)
	e := waitEvent(t, eventReconnect)
	checkFacts(t, g, e, "passthrough", outcomeReconnect, http.StatusUnauthorized)
	if e.Data["platform"] != "slack" {
		t.Fatalf("reconnect facts %v", e.Data)
	}
}

func TestSlowEventHandlersNeverSlowRequests(t *testing.T) {
	gate := make(chan struct{})
	recorderGate.Store(&gate)
	defer recorderGate.Store(nil)
	g := startGatewayWithEvents(t, "")
	released := false
	release := func() {
		if !released {
			close(gate)
			released = true
		}
	}
	defer release()

	// The handler is stuck on the first event: every call still answers,
	// and once the queue is full further events are dropped and counted.
	n := eventQueueSize + 100
	answers := concurrently(8, func(w int) response {
		var last response
		for i := w; i < n; i += 8 {
			last = g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key})
			if last.StatusCode != http.StatusForbidden {
				return last
			}
		}
		return last
	})
	for _, res := range answers {
		expect(t, res, http.StatusForbidden, "connection_not_owned")
	}
	dropped := droppedEvents(t)
	if dropped < 50 {
		t.Fatalf("%v events dropped, want the overflow of %d", dropped, n-eventQueueSize)
	}
	release()
	checkFacts(t, g, waitEvent(t, eventDenied), "passthrough", outcomeDenied, http.StatusForbidden)
}

// droppedEvents reads caddy_authkit_events_dropped_total from the admin API.
func droppedEvents(t *testing.T) float64 {
	t.Helper()
	v, ok := metricValue(t, scrape(t), "caddy_authkit_events_dropped_total")
	if !ok {
		t.Fatalf("no events_dropped_total in the metrics")
	}
	return v
}

// TestEventSinkCloseStopsItsSender: closing the sink (at Cleanup, maybe
// twice, maybe of none) ends its goroutine.
func TestEventSinkCloseStopsItsSender(t *testing.T) {
	s := &eventSink{queue: make(chan pendingEvent, 1), stop: make(chan struct{})}
	ended := make(chan struct{})
	go func() { s.run(); close(ended) }()
	s.close()
	s.close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the sender still runs after close")
	}
	var none *eventSink
	none.close()
}
