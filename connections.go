package caddyauthkit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

// serveConnections lists the caller's connections. Identity and type are
// forced by the gateway; the client chooses only platform, limit and page.
// Rows the vendor returns for anyone else are dropped, in case a filter is
// ignored, and with expose_keys off every field named like a key goes.
func (a *AuthKit) serveConnections(w *recorder, rq *request) error {
	id := rq.caller
	a.owners.renew(id) // what the caller sees is what keyless resolves next
	q := rq.r.URL.Query()
	query := url.Values{"identity": {id.ID}, "identityType": {id.Type}}
	if platform := q.Get("platform"); platform != "" {
		if !validName(platform) {
			return newError(http.StatusBadRequest, "query_invalid", "platform must be a platform name such as gmail")
		}
		query.Set("platform", platform)
	}
	if err := copyPaging(q, query); err != nil {
		return err
	}
	page, err := a.vendor.VaultList(rq.ctx, query)
	if err != nil {
		return err
	}
	writeJSON(w, page.Encode(func(c vendor.Connection) bool { return c.OwnedBy(id.ID, id.Type) }, !a.exposeKeys))
	return nil
}

// deleteConnection deletes a connection the caller owns. Anyone else's, or
// an unknown id, is a 404 alike, so the answer reveals nothing.
func (a *AuthKit) deleteConnection(w *recorder, rq *request) error {
	id, connectionID := rq.caller, rq.arg
	rq.connectionID = connectionID
	conn, found, err := a.vendor.VaultGet(rq.ctx, connectionID)
	if err != nil {
		return err
	}
	if !found {
		return errConnectionNotFound()
	}
	rq.platform = conn.Platform
	if !conn.OwnedBy(id.ID, id.Type) {
		a.metrics.denied("connection_not_owned")
		return errConnectionNotFound()
	}
	// Deleted or not, the caller's cached answers about it are stale.
	defer a.owners.forget(id)
	if found, err = a.vendor.VaultDelete(context.WithoutCancel(rq.ctx), connectionID); err != nil {
		return err
	}
	if !found {
		return errConnectionNotFound()
	}
	out, _ := json.Marshal(map[string]any{"id": connectionID, "deleted": true})
	writeJSON(w, out)
	return nil
}

// copyPaging copies the client's limit (at most 100) and page, validated.
func copyPaging(from, to url.Values) error {
	for _, p := range []struct {
		name string
		max  int
	}{{"limit", 100}, {"page", 1_000_000}} {
		if v := from.Get(p.name); v != "" {
			n, err := positiveParam(v, p.name, "", p.max)
			if err != nil {
				return err
			}
			to.Set(p.name, n)
		}
	}
	return nil
}

// validName accepts platform and category names, and nothing that could
// change a query or a path.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validConnectionID accepts the ids the vendor gives (UUIDs and the like)
// and nothing that could change the vault path.
func validConnectionID(s string) bool {
	return validName(s) && s != "." && s != ".."
}
