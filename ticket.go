package caddyauthkit

import (
	"encoding/json"
	"net/http"
	"time"
)

// ticketHeader carries a ticket to the token route.
const ticketHeader = "X-AuthKit-Ticket"

// canonicalTicketHeader is its key in a header map, looked up without
// canonicalising on every request.
var canonicalTicketHeader = http.CanonicalHeaderKey(ticketHeader)

// serveTicket mints a ticket for the caller, who came through the app's
// authentication layer (same origin): the page hands it to the widget,
// whose iframe calls the token route with it instead of the app's own
// credentials.
func (a *AuthKit) serveTicket(w *recorder, rq *request) error {
	a.owners.renew(rq.caller) // the widget may connect another account
	ticket, expires := a.tickets.Mint(rq.caller.ID, rq.caller.Type)
	body, _ := json.Marshal(map[string]string{"ticket": ticket, "expiresAt": expires.UTC().Format(time.RFC3339)})
	writeJSON(w, body)
	return nil
}
