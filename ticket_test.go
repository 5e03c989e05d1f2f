package caddyauthkit

import (
	"bytes"
	"fmt"
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
	ticket := g.do(call{method: "POST", url: ticketURL + "/authkit/ticket", user: "alice"}).json(t)["ticket"].(string)
	res := g.do(call{method: "POST", url: ticketURL + "/authkit/token", values: map[string][]string{ticketHeader: {ticket, ticket}}})
	expect(t, res, 401, "ticket_invalid")
}

// TestTicketsWorkAcrossInstancesWithTheSameKey: a ticket minted by one
// Caddy is accepted by another with the same secret and no shared store,
// and refused once that one is reloaded with another ticket_key.
func TestTicketsWorkAcrossInstancesWithTheSameKey(t *testing.T) {
	g := startGateway(t, nil, "")
	ticket := g.do(call{method: "POST", url: ticketURL + "/authkit/ticket", user: "bob"}).json(t)["ticket"].(string)

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
