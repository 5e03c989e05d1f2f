package caddyauthkit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// serveConnections lists the caller's connections. Identity and type are
// forced by the gateway; the client chooses only platform, limit and page.
// Rows Pica returns for anyone else are dropped, in case a filter is ignored.
func (a *AuthKit) serveConnections(w http.ResponseWriter, r *http.Request, id identity) error {
	q := r.URL.Query()
	query := url.Values{"identity": {id.ID}, "identityType": {id.Type}}
	if platform := q.Get("platform"); platform != "" {
		if !validPlatform(platform) {
			return newError(http.StatusBadRequest, "query_invalid", "platform must be a platform name such as gmail")
		}
		query.Set("platform", platform)
	}
	if err := copyPaging(q, query); err != nil {
		return err
	}
	body, err := a.pica.do(r.Context(), picaCall{
		Endpoint: "vault_list", Method: http.MethodGet, Path: "/v1/vault/connections", Query: query, Idempotent: true,
	})
	if err != nil {
		return unexpected(err)
	}
	body, err = onlyOwnedRows(body, id)
	if err != nil {
		return err
	}
	a.writeJSON(w, connectionsRoute.name, body)
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

// onlyOwnedRows returns body unchanged when every row is the caller's, else
// with the other rows dropped.
func onlyOwnedRows(body []byte, id identity) ([]byte, error) {
	var list map[string]json.RawMessage
	var rows []json.RawMessage
	if json.Unmarshal(body, &list) != nil || json.Unmarshal(list["rows"], &rows) != nil {
		return nil, badAnswer()
	}
	kept := rows[:0:0]
	for _, row := range rows {
		var c vaultConnection
		if json.Unmarshal(row, &c) == nil && c.ownedBy(id) {
			kept = append(kept, row)
		}
	}
	if len(kept) == len(rows) {
		return body, nil
	}
	if kept == nil {
		kept = []json.RawMessage{}
	}
	list["rows"], _ = json.Marshal(kept)
	return json.Marshal(list)
}

// deleteConnection deletes a connection the caller owns. Anyone else's, or an
// unknown id, is a 404 alike, so the answer reveals nothing.
func (a *AuthKit) deleteConnection(w http.ResponseWriter, r *http.Request, id identity, connectionID string) error {
	notFound := newError(http.StatusNotFound, "connection_not_found", "no such connection for the caller")
	path := "/v1/vault/connections/" + connectionID
	body, err := a.pica.do(r.Context(), picaCall{Endpoint: "vault_get", Method: http.MethodGet, Path: path, Idempotent: true})
	var se *picaStatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return notFound
	}
	if err != nil {
		return unexpected(err)
	}
	conn, err := decodeConnection(body, connectionID)
	if err != nil {
		return err
	}
	if !conn.ownedBy(id) {
		a.metrics.denied("connection_not_owned")
		return notFound
	}
	if _, err := a.pica.do(r.Context(), picaCall{Endpoint: "vault_delete", Method: http.MethodDelete, Path: path}); err != nil {
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			return notFound
		}
		return unexpected(err)
	}
	a.owners.forget(newOwnerKey(id, conn.Key))
	out, _ := json.Marshal(map[string]any{"id": connectionID, "deleted": true})
	a.writeJSON(w, connectionRoute.name, out)
	return nil
}

// decodeConnection reads a vault row, bare or in a {rows: [...]} list.
func decodeConnection(body []byte, connectionID string) (vaultConnection, error) {
	var conn vaultConnection
	if err := json.Unmarshal(body, &conn); err != nil {
		return conn, badAnswer()
	}
	if conn.ID == "" {
		var list struct {
			Rows []vaultConnection `json:"rows"`
		}
		_ = json.Unmarshal(body, &list)
		for _, row := range list.Rows {
			if row.ID == connectionID {
				conn = row
			}
		}
	}
	if conn.ID != connectionID {
		return conn, badAnswer()
	}
	return conn, nil
}

// serveConnectors lists the connectors enabled in AuthKit; the answer is the
// same for every caller, so it is cached briefly.
func (a *AuthKit) serveConnectors(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	query := url.Values{"authkit": {"true"}}
	for _, name := range []string{"platform", "category"} {
		if v := q.Get(name); v != "" {
			if !validPlatform(v) {
				return newError(http.StatusBadRequest, "query_invalid", name+" is not a valid name")
			}
			query.Set(name, v)
		}
	}
	if err := copyPaging(q, query); err != nil {
		return err
	}
	body, err := a.connectors.get(r.Context(), query.Encode(), func(ctx context.Context) ([]byte, error) {
		body, err := a.pica.do(ctx, picaCall{
			Endpoint: "connectors", Method: http.MethodGet, Path: "/v1/available-connectors", Query: query, Idempotent: true,
		})
		if err != nil {
			return nil, unexpected(err)
		}
		if !json.Valid(body) {
			return nil, badAnswer()
		}
		return body, nil
	})
	if err != nil {
		return err
	}
	a.writeJSON(w, connectorsRoute.name, body)
	return nil
}

func validPlatform(s string) bool {
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

// validConnectionID accepts the ids Pica gives (UUIDs and the like) and
// nothing that could change the vault path.
func validConnectionID(s string) bool {
	return validPlatform(s) && s != "." && s != ".."
}

// responseCache keeps small shared answers for a TTL; concurrent misses for
// one key share one fetch.
type responseCache struct {
	mu      sync.Mutex
	entries map[string]cachedResponse
	ttl     time.Duration
	max     int
	calls   singleflight.Group
}

type cachedResponse struct {
	body    []byte
	expires time.Time
}

func newResponseCache(ttl time.Duration, max int) *responseCache {
	return &responseCache{entries: make(map[string]cachedResponse), ttl: ttl, max: max}
}

func (c *responseCache) get(ctx context.Context, key string, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.body, nil
	}
	v, err, _ := c.calls.Do(key, func() (any, error) {
		body, err := fetch(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
		c.entries[key] = cachedResponse{body: body, expires: time.Now().Add(c.ttl)}
		c.mu.Unlock()
		return body, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

func (c *responseCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
