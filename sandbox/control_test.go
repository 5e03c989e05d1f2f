package sandbox

import "testing"

func TestControlConnectsForTheIframe(t *testing.T) {
	s := New(Options{Provider: ProviderOne})
	rid := itoa(linkSession(t, s, "acme"))

	// The iframe's preflight, from another origin.
	res, _ := send(t, s, "OPTIONS", "/sandbox/connections", "", map[string]string{"Origin": "http://app.test", "Access-Control-Request-Method": "POST"})
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
		res.Header.Get("Access-Control-Allow-Headers") != "Content-Type" || res.Header.Get("Access-Control-Allow-Methods") != "GET, POST" {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
	if res, _ := send(t, s, "GET", "/sandbox/connections", "", nil); res.StatusCode != 405 {
		t.Fatalf("GET /sandbox/connections: %d", res.StatusCode)
	}

	// A link session's identity gets the connection; connectors outside AuthKit are refused.
	res, made := send(t, s, "POST", "/sandbox/connections", `{"requestId":`+rid+`,"connectionDefId":3}`, nil)
	if res.StatusCode != 201 || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
		made["identity"] != "acme" || made["identityType"] != "team" || made["platform"] != "hubspot" {
		t.Fatalf("connect: %d %v", res.StatusCode, made)
	}
	for _, in := range []string{`{"requestId":` + rid + `,"connectionDefId":31}`, `{"requestId":999,"connectionDefId":1}`} {
		if res, _ := send(t, s, "POST", "/sandbox/connections", in, nil); res.StatusCode != 404 {
			t.Fatalf("%s: %d", in, res.StatusCode)
		}
	}
	// Or the connection named outright; the identity type defaults to user.
	res, made = send(t, s, "POST", "/sandbox/connections", `{"platform":"slack","identity":"bob"}`, nil)
	if res.StatusCode != 201 || made["identity"] != "bob" || made["identityType"] != "user" || made["platform"] != "slack" {
		t.Fatalf("add: %d %v", res.StatusCode, made)
	}
	if res, _ := send(t, s, "POST", "/sandbox/connections", `{}`, nil); res.StatusCode != 400 {
		t.Fatalf("empty request: %d", res.StatusCode)
	}
	if got := len(s.Connections()); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}

	// The flow's state is polled, so it must not be cached.
	state, _ := startFlow(t, s, rid, "1")
	if res, _ := send(t, s, "GET", "/sandbox/oauth/state/"+state, "", nil); res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("state: %d %v", res.StatusCode, res.Header)
	}
}
