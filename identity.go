package caddyauthkit

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddyauthkit/caddyauthkit/internal/inspect"
)

// identity is the caller as the authentication layer in front named it.
type identity struct {
	ID   string
	Type string
}

// resolveIdentity reads the caller's identity. On the token route it comes
// from a ticket: that route is the one the site's auth layer lets through
// (the vendor's iframe calls it without the app's credentials), so an
// identity header there is whatever the client sent; only with ticket_only
// off may the placeholder name the caller there too. Elsewhere it comes
// from the configured placeholders. Nothing else the client sends counts.
func (a *AuthKit) resolveIdentity(r *http.Request, rt *route) (identity, error) {
	if rt == tokenRoute {
		switch tickets := r.Header[canonicalTicketHeader]; {
		case len(tickets) > 1:
			return identity{}, errTicketInvalid()
		case len(tickets) == 1:
			return a.openTicket(tickets[0])
		case a.ticketOnly:
			return identity{}, newError(http.StatusUnauthorized, "ticket_required",
				"the token route takes a ticket: the app's page gets one from "+a.Prefix+"/ticket and passes it to the widget as token.headers "+ticketHeader)
		}
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return identity{}, newError(http.StatusInternalServerError, "internal_error", "no replacer in request context")
	}
	if a.IdentityTrustedProxiesOnly { // Validate saw a header among the placeholders
		if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); !trusted {
			return identity{}, newError(http.StatusUnauthorized, "identity_missing", "the identity header is only accepted from a trusted proxy")
		}
	}
	// ReplaceAll, not ReplaceKnown: an unset placeholder must become "", not stay literal.
	id := repl.ReplaceAll(a.Identity, "")
	if id == "" {
		return identity{}, newError(http.StatusUnauthorized, "identity_missing", "the request carries no authenticated identity")
	}
	if reason := inspect.Identity(id); reason != "" {
		return identity{}, newError(http.StatusBadRequest, "identity_invalid", "the identity "+reason)
	}
	kind := repl.ReplaceAll(a.IdentityType, "")
	if !inspect.IdentityType(kind) {
		return identity{}, newError(http.StatusBadRequest, "identity_type_invalid", "the identity type must be user, team, organization or project")
	}
	return identity{ID: id, Type: kind}, nil
}

// openTicket is the identity a ticket stands for.
func (a *AuthKit) openTicket(ticket string) (identity, error) {
	id, kind, err := a.tickets.Open(ticket)
	if err != nil {
		return identity{}, errTicketInvalid()
	}
	return identity{ID: id, Type: kind}, nil
}

func errTicketInvalid() *apiError {
	return newError(http.StatusUnauthorized, "ticket_invalid", "the ticket is invalid or has expired; ask the app for a new one")
}

// keySuffix is how the vendor writes an identity at the end of a
// connection key: spaces and colons become dashes.
func keySuffix(id string) string {
	return keySuffixReplacer.Replace(id)
}

var keySuffixReplacer = strings.NewReplacer(" ", "-", ":", "-")

// identityHeaders are the request headers the identity and its type are
// read from ({http.request.header.NAME}): the client must never choose
// them (stripped before passthrough; trusted proxies only, or copied by
// forward_auth).
func identityHeaders(placeholders ...string) []string {
	const open = "{http.request.header."
	var out []string
	for _, p := range placeholders {
		for rest := p; ; {
			i := strings.Index(rest, open)
			if i < 0 {
				break
			}
			rest = rest[i+len(open):]
			if end := strings.IndexByte(rest, '}'); end > 0 {
				out = append(out, http.CanonicalHeaderKey(rest[:end]))
			}
		}
	}
	return out
}

// closeAfterChunked asks Go's server to close the connection after answering
// an HTTP/1.x request framed by Transfer-Encoding. It matters where a request
// header names the caller: a smuggled request could name anyone, while one
// behind basic_auth or a JWT layer carries its own credentials. Go frames a
// request with both Content-Length and Transfer-Encoding by the latter and
// drops the former before any handler sees it, so a proxy in front that
// framed it by Content-Length may have sent more: a smuggled request whose
// identity header the proxy never checked. Closing means nothing after this
// body is ever read on this connection. Go does not tell handlers the
// request's Transfer-Encoding; on HTTP/1.x an unknown length (-1) means
// chunked.
func closeAfterChunked(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && (r.ContentLength < 0 || len(r.TransferEncoding) > 0) {
		w.Header().Set("Connection", "close")
	}
}
