package caddyauthkit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// vaultConnection is the part of a vault row the gateway checks.
type vaultConnection struct {
	ID           string `json:"id"`
	Key          string `json:"key"`
	Platform     string `json:"platform"`
	Name         string `json:"name"`
	Identity     string `json:"identity"`
	IdentityType string `json:"identityType"`
	Active       *bool  `json:"active"`
}

func (c vaultConnection) ownedBy(id identity) bool {
	return c.Identity == id.ID && c.IdentityType == id.Type
}

// vaultPage is one answer of GET /v1/vault/connections: its fields as the
// vendor wrote them, and each row both raw and decoded.
type vaultPage struct {
	fields map[string]json.RawMessage
	raw    []json.RawMessage
	rows   []vaultConnection
}

func decodeVaultPage(body []byte) (vaultPage, error) {
	var page vaultPage
	if json.Unmarshal(body, &page.fields) != nil || json.Unmarshal(page.fields["rows"], &page.raw) != nil || page.raw == nil {
		return page, errBadAnswer()
	}
	page.rows = make([]vaultConnection, len(page.raw))
	for i, row := range page.raw {
		if json.Unmarshal(row, &page.rows[i]) != nil {
			return page, errBadAnswer()
		}
	}
	return page, nil
}

// ownedBy returns the page with only id's rows (and, with keys false,
// without their keys), encoded.
func (page vaultPage) ownedBy(id identity, keys bool) []byte {
	kept := make([]json.RawMessage, 0, len(page.raw))
	for i, row := range page.raw {
		if !page.rows[i].ownedBy(id) {
			continue
		}
		if !keys {
			var fields map[string]json.RawMessage
			_ = json.Unmarshal(row, &fields) // decoded once already
			delete(fields, "key")
			row, _ = json.Marshal(fields)
		}
		kept = append(kept, row)
	}
	page.fields["rows"], _ = json.Marshal(kept)
	if len(kept) < len(page.raw) {
		// The vendor ignored the filter: its counts are of everyone's
		// connections, which are none of the caller's business.
		page.fields["total"], _ = json.Marshal(len(kept))
		page.fields["pages"] = json.RawMessage("1")
	}
	out, _ := json.Marshal(page.fields)
	return out
}

// serveConnections lists the caller's connections. Identity and type are
// forced by the gateway; the client chooses only platform, limit and page.
// Rows the vendor returns for anyone else are dropped, in case a filter is
// ignored.
func (a *AuthKit) serveConnections(ctx context.Context, w http.ResponseWriter, r *http.Request, id identity) error {
	a.renewGeneration(id) // what the caller sees is what keyless resolves next
	q := r.URL.Query()
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
	page, err := a.pica.vaultList(ctx, query)
	if err != nil {
		return err
	}
	a.writeJSON(w, r, connectionsRoute, page.ownedBy(id, a.exposeKeys))
	return nil
}

// deleteConnection deletes a connection the caller owns. Anyone else's, or
// an unknown id, is a 404 alike, so the answer reveals nothing.
func (a *AuthKit) deleteConnection(ctx context.Context, w http.ResponseWriter, r *http.Request, id identity, connectionID string) (err error) {
	rec := newAudit(connectionRoute, id)
	rec.connectionID = connectionID
	defer a.audit(r, rec, &err)
	notFound := newError(http.StatusNotFound, "connection_not_found", "no such connection for the caller")
	conn, found, err := a.pica.vaultGet(ctx, connectionID)
	if err != nil {
		return err
	}
	if !found {
		return notFound
	}
	rec.platform = conn.Platform
	if !conn.ownedBy(id) {
		a.metrics.denied("connection_not_owned")
		return notFound
	}
	// Deleted or not, the caller's cached answers about it are stale.
	defer a.forgetConnections(id)
	if found, err = a.pica.vaultDelete(context.WithoutCancel(ctx), connectionID); err != nil {
		return err
	}
	if !found {
		return notFound
	}
	out, _ := json.Marshal(map[string]any{"id": connectionID, "deleted": true})
	a.writeJSON(w, r, connectionRoute, out)
	return nil
}

// decodeConnection reads a vault row, bare or in a {rows: [...]} list.
func decodeConnection(body []byte, connectionID string) (vaultConnection, error) {
	var conn vaultConnection
	if err := json.Unmarshal(body, &conn); err != nil {
		return conn, errBadAnswer()
	}
	if conn.ID == "" {
		if page, err := decodeVaultPage(body); err == nil {
			for _, row := range page.rows {
				if row.ID == connectionID {
					conn = row
				}
			}
		}
	}
	if conn.ID != connectionID {
		return conn, errBadAnswer()
	}
	return conn, nil
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

// connectionSummary names a connection without its key, for answers that
// list candidates.
type connectionSummary struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Platform string `json:"platform"`
}
