package caddyauthkit

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// TestTicketStandsForTheCallerOnTheTokenRouteOnly: the app mints a ticket
// behind its sign-in; the vendor's iframe, with no credential, redeems it
// on the token route, as often as it pages within the ticket's life. On
// every other route a ticket is no identity.
func TestTicketStandsForTheCallerOnTheTokenRouteOnly(t *testing.T) {
	g := startGateway(t, nil, "")
	// Signed out, the ticket route is behind basic_auth.
	expect(t, g.do(call{method: "POST", url: ticketURL + "/authkit/ticket"}), 401, "")
	res := g.do(call{method: "POST", url: ticketURL + "/authkit/ticket", user: "alice"})
	expect(t, res, 200, "")
	minted := res.json(t)
	ticket := minted["ticket"].(string)
	expiresAt, err := time.Parse(time.RFC3339, minted["expiresAt"].(string))
	if err != nil || expiresAt.Before(time.Now()) || expiresAt.After(time.Now().Add(time.Minute+time.Second)) {
		t.Fatalf("expiresAt %v (%v), want within the default minute", minted["expiresAt"], err)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("a ticket may be cached")
	}

	withTicket := map[string]string{ticketHeader: ticket}
	for page := 1; page <= 3; page++ { // the One widget pages with one ticket
		res := g.do(call{method: "POST", url: ticketURL + "/authkit/token?page=" + string(rune('0'+page)) + "&limit=10", header: withTicket})
		expect(t, res, 200, "")
	}
	for _, r := range requestsTo(g.pica, sandbox.EndpointToken) {
		if !bytes.Contains(r.Body, []byte(`"identity":"alice"`)) {
			t.Fatalf("a token by ticket was asked for %s, want alice", r.Body)
		}
	}

	// The header site has the same secret, so it opens the ticket too, but
	// only on the token route: elsewhere the missing header is what counts.
	expect(t, g.do(call{method: "POST", url: headerURL + "/authkit/token", header: withTicket}), 200, "")
	for _, step := range []struct{ method, path string }{
		{"GET", "/authkit/passthrough/users/me"},
		{"GET", "/authkit/connections"},
		{"GET", "/authkit/connectors"},
		{"POST", "/authkit/ticket"},
		{"DELETE", "/authkit/connections/" + g.alice.ID},
	} {
		expect(t, g.do(call{method: step.method, url: headerURL + step.path,
			header: map[string]string{ticketHeader: ticket, "X-Pica-Connection-Key": g.alice.Key}}), 401, "identity_missing")
	}
	if n := len(requestsTo(g.pica, "passthrough")) + len(requestsTo(g.pica, "vault_delete")); n != 0 {
		t.Fatalf("%d calls reached the vendor on a ticket outside the token route", n)
	}

	// A bad ticket, or two, is refused; so is the token route with neither
	// ticket nor identity, with CORS headers the iframe can read.
	origin := map[string]string{"Origin": "https://authkit.picaos.com"}
	for name, header := range map[string]map[string]string{
		"tampered": {ticketHeader: ticket[:len(ticket)-2] + "AA", "Origin": origin["Origin"]},
		"garbage":  {ticketHeader: "not a ticket", "Origin": origin["Origin"]},
	} {
		res := g.do(call{method: "POST", url: ticketURL + "/authkit/token", header: header})
		expect(t, res, 401, "ticket_invalid")
		if res.Header.Get("Access-Control-Allow-Origin") != origin["Origin"] {
			t.Fatalf("%s ticket: 401 without CORS headers", name)
		}
	}
	res = g.do(call{method: "POST", url: ticketURL + "/authkit/token", header: origin})
	expect(t, res, 401, "ticket_required")
	if res.Header.Get("Access-Control-Allow-Origin") != origin["Origin"] {
		t.Fatal("401 without ticket nor identity has no CORS headers")
	}
}

// TestTwoTicketsAreRefused: a request with two tickets is ambiguous.
func TestTwoTicketsAreRefused(t *testing.T) {
	g := startGateway(t, nil, "")
	ticket := g.ticketFor("alice")[ticketHeader]
	res := g.do(call{method: "POST", url: ticketURL + "/authkit/token", values: map[string][]string{ticketHeader: {ticket, ticket}}})
	expect(t, res, 401, "ticket_invalid")
}

// TestTicketsWorkAcrossInstancesWithTheSameKey: a ticket minted by one
// Caddy is accepted by another with the same secret and no shared store,
// and refused once that one is reloaded with another ticket_key.
func TestTicketsWorkAcrossInstancesWithTheSameKey(t *testing.T) {
	g := startGateway(t, nil, "")
	ticket := g.ticketFor("bob")[ticketHeader]

	other := startInstance(t, g.picaURL, "")
	res := other.do("POST", "/authkit/token", map[string]string{ticketHeader: ticket})
	expect(t, res, 200, "")
	reqs := requestsTo(g.pica, sandbox.EndpointToken)
	if len(reqs) != 1 || !bytes.Contains(reqs[0].Body, []byte(`"identity":"bob"`)) {
		t.Fatalf("the second instance asked the vendor %d times, last for %s", len(reqs), reqs[len(reqs)-1].Body)
	}

	other.reload(g.picaURL, "ticket_key another-key-entirely")
	expect(t, other.do("POST", "/authkit/token", map[string]string{ticketHeader: ticket}), 401, "ticket_invalid")
}

// TestTicketsScaleOutBehindALoadBalancer: two Caddy instances with the same
// secret behind a third that balances them round robin. A ticket minted
// through one is redeemed through the other, also after either reloads.
func TestTicketsScaleOutBehindALoadBalancer(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	vendor := httptest.NewServer(pica)
	t.Cleanup(vendor.Close)
	a, b := startInstance(t, vendor.URL, ""), startInstance(t, vendor.URL, "")
	// Without keep-alive the balancer never sends a call on a connection that
	// a reloading instance is closing.
	lb := startCaddy(t, fmt.Sprintf("reverse_proxy %s %s {\n\t\tlb_policy round_robin\n\t\ttransport http {\n\t\t\tkeepalive off\n\t\t}\n\t}",
		strings.TrimPrefix(a.url, "http://"), strings.TrimPrefix(b.url, "http://")))

	// mintAndRedeem mints a ticket for carol and redeems it with nothing
	// else; round robin sends the two calls to different instances.
	mintAndRedeem := func(when string) {
		t.Helper()
		minted := lb.do("POST", "/authkit/ticket", map[string]string{"X-Auth-User": "carol"})
		expect(t, minted, 200, "")
		redeemed := lb.do("POST", "/authkit/token", map[string]string{ticketHeader: minted.json(t)["ticket"].(string)})
		expect(t, redeemed, 200, "")
		by, at := minted.Header.Get("X-Instance"), redeemed.Header.Get("X-Instance")
		if by == "" || by == at {
			t.Fatalf("%s: minted by %q and redeemed by %q: the balancer did not spread them", when, by, at)
		}
		last := requestsTo(pica, sandbox.EndpointToken)
		if !bytes.Contains(last[len(last)-1].Body, []byte(`"identity":"carol"`)) {
			t.Fatalf("%s: the token was asked for %s", when, last[len(last)-1].Body)
		}
	}
	mintAndRedeem("at start")
	a.reload(vendor.URL, "ticket_ttl 2m")
	mintAndRedeem("after a reload of the first")
	b.reload(vendor.URL, "ticket_ttl 3m")
	mintAndRedeem("after a reload of the second")
}

// basicAuth is the Authorization value of a basic_auth user whose password
// is its name.
func basicAuth(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+user))
}

// TestTokenRouteTakesATicketNotAnIdentityTheClientSends: the token route is
// the one the site's auth layer lets through, so whatever names a caller
// there came from the client: identity headers, or a real user's basic-auth
// credential that no auth layer checked. Without a ticket each gets 401
// ticket_required that the vendor's iframe can read (CORS headers), and the
// vendor is never asked; also on a site whose identity is a header. With a
// valid ticket the token is the ticket's caller's, whatever else is sent.
func TestTokenRouteTakesATicketNotAnIdentityTheClientSends(t *testing.T) {
	g := startGateway(t, nil, "")
	// The header site as a trusted proxy's set-up with ticket_only left on
	// (its default): its identity is X-Auth-User everywhere but the token route.
	config := g.config("")
	headerSiteTicketOnly := strings.Replace(config, "identity_type {http.request.header.X-Auth-Type}\n\t\tticket_only off\n",
		"identity_type {http.request.header.X-Auth-Type}\n", 1)
	if headerSiteTicketOnly == config {
		t.Fatal("the header site's ticket_only line was not found in the test config")
	}
	g.loadConfig(headerSiteTicketOnly)
	g.pica.ResetRequests()

	const origin = "https://authkit.picaos.com"
	spoofs := map[string]map[string]string{
		"no credential":            {},
		"Remote-User":              {"Remote-User": "bob"},
		"X-Auth-User":              {"X-Auth-User": "bob", "X-Auth-Type": "user"},
		"X-Forwarded-User":         {"X-Forwarded-User": "bob"},
		"X-Remote-User":            {"X-Remote-User": "bob"},
		"X-Auth-Request-User":      {"X-Auth-Request-User": "bob"},
		"a real user's basic auth": {"Authorization": basicAuth("bob")},
		"basic auth and identity headers": {"Authorization": basicAuth("bob"), "Remote-User": "bob",
			"X-Auth-User": "bob", "X-Auth-Type": "user"},
	}
	for _, site := range []string{ticketURL, headerURL} {
		for name, spoof := range spoofs {
			header := map[string]string{"Origin": origin, "Content-Type": "application/json"}
			for k, v := range spoof {
				header[k] = v
			}
			res := g.do(call{method: "POST", url: site + "/authkit/token", header: header,
				body: []byte(`{"identity":"bob","identityType":"user"}`)})
			if res.StatusCode != http.StatusUnauthorized || res.errorCode(t) != "ticket_required" {
				t.Errorf("%s, %s: %d %.300s, want 401 ticket_required", site, name, res.StatusCode, res.body)
				continue
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("%s, %s: the 401 has Access-Control-Allow-Origin %q, want %q: the iframe cannot read it", site, name, got, origin)
			}
		}
	}
	if reqs := g.pica.Requests(); len(reqs) != 0 {
		t.Fatalf("the vendor was asked %d times by token calls without a ticket; first: %s %s %s",
			len(reqs), reqs[0].Method, reqs[0].Path, reqs[0].Body)
	}
	// The header site still takes its header on the other routes.
	expect(t, g.do(call{method: "GET", url: headerURL + "/authkit/connections",
		header: map[string]string{"X-Auth-User": "bob", "X-Auth-Type": "user"}}), 200, "")

	// A valid ticket works, and it alone names the caller.
	ticket := g.ticketFor("alice")[ticketHeader]
	g.pica.ResetRequests()
	for _, site := range []string{ticketURL, headerURL} {
		res := g.do(call{method: "POST", url: site + "/authkit/token", header: map[string]string{
			ticketHeader: ticket, "Origin": origin, "Authorization": basicAuth("bob"),
			"Remote-User": "bob", "X-Auth-User": "bob", "X-Auth-Type": "user"}})
		expect(t, res, 200, "")
		if res.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("%s: the token by ticket has no CORS headers", site)
		}
		if _, ok := res.json(t)["rows"].([]any); !ok {
			t.Fatalf("%s: no token rows in %s", site, res.body)
		}
	}
	reqs := requestsTo(g.pica, sandbox.EndpointToken)
	if len(reqs) == 0 {
		t.Fatal("the tokens by ticket did not reach the vendor")
	}
	for _, r := range reqs {
		if !bytes.Contains(r.Body, []byte(`"identity":"alice"`)) {
			t.Fatalf("a token by alice's ticket was asked for %s", r.Body)
		}
	}
}

// TestTicketOnlyOffTakesThePlaceholderIdentity: the legacy set-up, with
// basic_auth over every route and ticket_only off, gets the token of the
// signed-in user with no ticket; the auth layer still refuses a caller
// without credentials, and a header site names its caller by the header.
func TestTicketOnlyOffTakesThePlaceholderIdentity(t *testing.T) {
	g := startGateway(t, nil, "")
	res := g.as("alice", "POST", "/authkit/token", map[string]string{"Origin": "http://app.test"})
	expect(t, res, 200, "")
	if _, ok := res.json(t)["rows"].([]any); !ok || res.Header.Get("Access-Control-Allow-Origin") != "http://app.test" {
		t.Fatalf("legacy token: %s, origin %q", res.body, res.Header.Get("Access-Control-Allow-Origin"))
	}
	expect(t, g.do(call{method: "POST", url: headerURL + "/authkit/token",
		header: map[string]string{"X-Auth-User": "carol", "X-Auth-Type": "team"}}), 200, "")
	reqs := requestsTo(g.pica, sandbox.EndpointToken)
	if len(reqs) != 2 || !bytes.Contains(reqs[0].Body, []byte(`"identity":"alice","identityType":"user"`)) ||
		!bytes.Contains(reqs[1].Body, []byte(`"identity":"carol","identityType":"team"`)) {
		t.Fatalf("the legacy tokens were asked for %q", reqs)
	}

	// Without credentials basic_auth answers, not authkit, and nothing is asked.
	g.pica.ResetRequests()
	res = g.do(call{method: "POST", url: appURL + "/authkit/token"})
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("Www-Authenticate") == "" {
		t.Fatalf("no credentials on the legacy site: %d %s, want basic_auth's 401", res.StatusCode, res.body)
	}
	if n := len(g.pica.Requests()); n != 0 {
		t.Fatalf("%d vendor calls for a caller without credentials", n)
	}
}
