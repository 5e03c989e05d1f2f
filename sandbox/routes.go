package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The names of the vendor's endpoints, as recorded in Request.Endpoint and
// used by SetFault and Count. The plugin's metrics and logs use the same.
const (
	// EndpointToken is POST /v1/authkit (Pica) or /v1/authkit/token (One).
	EndpointToken = "token"
	// EndpointFlags is GET /v1/users/flags (Pica only).
	EndpointFlags = "flags"
	// EndpointVaultList is GET /v1/vault/connections.
	EndpointVaultList = "vault_list"
	// EndpointVaultGet is GET /v1/vault/connections/{id}.
	EndpointVaultGet = "vault_get"
	// EndpointVaultDelete is DELETE /v1/vault/connections/{id}.
	EndpointVaultDelete = "vault_delete"
	// EndpointConnectors is GET /v1/available-connectors.
	EndpointConnectors = "connectors"
	// EndpointPassthrough is any method on /v1/passthrough/{path}.
	EndpointPassthrough = "passthrough"
	// EndpointUnknown is any other request.
	EndpointUnknown = "unknown"
)

// canonicalEndpoint maps old endpoint names to current ones.
func canonicalEndpoint(name string) string {
	if name == "authkit" {
		return EndpointToken
	}
	return name
}

// ServeHTTP answers as the vendor's API does; /sandbox/ holds the test
// controls and /iframe/ the stand-in AuthKit iframe.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/sandbox/") {
		s.serveControl(w, r)
		return
	}
	if r.URL.Path == "/iframe" || r.URL.Path == "/iframe.html" || strings.HasPrefix(r.URL.Path, "/iframe/") {
		serveIframe(w, r)
		return
	}
	d := s.dialectOf(r)
	endpoint, arg := classify(r, d)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Endpoint: endpoint, Dialect: d.name, Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(),
		RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body,
	})
	s.mu.Unlock()

	if !sleep(r, s.opts.Latency) {
		return
	}
	if endpoint == EndpointUnknown {
		d.writeError(w, http.StatusNotFound, "Not found")
		return
	}
	if s.injectFault(w, r, d, endpoint) {
		return
	}
	secret := d.secretHeader()
	if r.Header.Get(secret) != s.opts.Secret || len(r.Header.Values(secret)) != 1 {
		d.writeError(w, http.StatusUnauthorized, "You are not authorized to access this resource")
		return
	}
	switch endpoint {
	case EndpointFlags:
		writeJSON(w, http.StatusOK, map[string]any{
			"accessList": []string{}, "authkitWhitelist": s.opts.WhiteLabel, "earlyAccess": []string{}, "completedQuickstart": true,
		})
	case EndpointToken:
		s.serveToken(w, r, d, body)
	case EndpointVaultList:
		s.serveVaultList(w, r, d)
	case EndpointVaultGet, EndpointVaultDelete:
		s.serveVaultItem(w, r, d, arg)
	case EndpointConnectors:
		s.serveConnectors(w, r, d)
	case EndpointPassthrough:
		s.servePassthrough(w, r, d, arg, body)
	}
}

// classify names the endpoint of a request in dialect d, and its argument.
// Paths the dialect does not have, such as One's flags, are unknown.
func classify(r *http.Request, d *dialect) (endpoint, arg string) {
	p := r.URL.Path
	switch {
	case p == "/v1/users/flags" && r.Method == http.MethodGet && d.flags:
		return EndpointFlags, ""
	case p == d.tokenPath && r.Method == http.MethodPost:
		return EndpointToken, ""
	case p == "/v1/vault/connections" && r.Method == http.MethodGet:
		return EndpointVaultList, ""
	case strings.HasPrefix(p, "/v1/vault/connections/") && r.Method == http.MethodGet:
		return EndpointVaultGet, strings.TrimPrefix(p, "/v1/vault/connections/")
	case strings.HasPrefix(p, "/v1/vault/connections/") && r.Method == http.MethodDelete:
		return EndpointVaultDelete, strings.TrimPrefix(p, "/v1/vault/connections/")
	case p == "/v1/available-connectors" && r.Method == http.MethodGet:
		return EndpointConnectors, ""
	case strings.HasPrefix(p, "/v1/passthrough/"):
		return EndpointPassthrough, strings.TrimPrefix(r.URL.EscapedPath(), "/v1/passthrough")
	}
	return EndpointUnknown, ""
}

// serveToken answers the token endpoint: one page of the enabled connectors,
// and a requestId that names the link session.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, d *dialect, body []byte) {
	var payload struct {
		Identity      string `json:"identity"`
		IdentityType  string `json:"identityType"`
		IdentityType2 string `json:"identity_type"`
	}
	if len(body) > 0 && json.Unmarshal(body, &payload) != nil {
		d.writeError(w, http.StatusBadRequest, "Invalid request body")
		return
	}
	kind := payload.IdentityType
	if kind == "" {
		kind = payload.IdentityType2
	}
	switch kind {
	case "", "user", "team", "organization", "project":
	default:
		d.writeError(w, http.StatusBadRequest, "Invalid identityType")
		return
	}
	limit, page, ok := pagination(w, r.URL.Query(), d, 100)
	if !ok {
		return
	}
	s.mu.Lock()
	s.requestID++
	requestID := s.requestID
	if len(s.sessions) < 100_000 {
		s.sessions[requestID] = session{payload.Identity, kind}
	}
	s.mu.Unlock()

	// Keys in the order encoding/json gives a map.
	rows := s.authkitRows
	answer := fmt.Appendf(nil, `{"page":%d,"pages":%d,"requestId":%d,"rows":[`, page, pages(len(rows), limit), requestID)
	lo, hi := window(len(rows), limit, page)
	for i, row := range rows[lo:hi] {
		if i > 0 {
			answer = append(answer, ',')
		}
		answer = append(answer, row...)
	}
	answer = fmt.Appendf(answer, `],"total":%d}`, len(rows))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answer)
}

func (s *Server) serveVaultList(w http.ResponseWriter, r *http.Request, d *dialect) {
	q := r.URL.Query()
	limit, page, ok := pagination(w, q, d, 20)
	if !ok {
		return
	}
	var keys map[string]bool
	if q.Has("key") {
		keys = map[string]bool{}
		for _, k := range strings.Split(q.Get("key"), ",") {
			keys[k] = true
		}
	}
	match := func(c Connection) bool {
		return (!q.Has("identity") || c.Identity == q.Get("identity")) &&
			(!q.Has("identityType") || c.IdentityType == q.Get("identityType")) &&
			(!q.Has("platform") || c.Platform == q.Get("platform")) &&
			(!q.Has("active") || strconv.FormatBool(c.Active) == q.Get("active")) &&
			(keys == nil || keys[c.Key])
	}
	var found []Connection
	for _, c := range s.Connections() {
		if match(c) {
			found = append(found, c)
		}
	}
	writePage(w, found, limit, page)
}

func (s *Server) serveVaultItem(w http.ResponseWriter, r *http.Request, d *dialect, id string) {
	c, ok := s.vaultItem(id, r.Method == http.MethodDelete)
	if !ok {
		d.writeError(w, http.StatusNotFound, "Value not found")
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// vaultItem is the connection id, taken out of the vault if remove. The
// answer is written after, not under the lock.
func (s *Server) vaultItem(id string, remove bool) (Connection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.connections, func(c Connection) bool { return c.ID == id })
	if i < 0 {
		return Connection{}, false
	}
	c := s.connections[i]
	if remove {
		s.connections = slices.Delete(s.connections, i, i+1)
	}
	return c, true
}

func (s *Server) serveConnectors(w http.ResponseWriter, r *http.Request, d *dialect) {
	q := r.URL.Query()
	limit, page, ok := pagination(w, q, d, 20)
	if !ok {
		return
	}
	var found []connector
	for _, c := range s.connectors {
		if (q.Get("authkit") != "true" || c.authkit) &&
			(!q.Has("platform") || c.Platform == q.Get("platform")) &&
			(!q.Has("key") || c.Key == q.Get("key")) &&
			(!q.Has("name") || c.Name == q.Get("name")) &&
			(!q.Has("category") || c.Category == q.Get("category")) {
			found = append(found, c)
		}
	}
	writePage(w, found, limit, page)
}

// pagination reads limit and page as the vendor does; limit is checked first.
func pagination(w http.ResponseWriter, q url.Values, d *dialect, defaultLimit int) (limit, page int, ok bool) {
	limit, page = defaultLimit, 1
	for _, p := range []struct {
		name string
		dst  *int
	}{{"limit", &limit}, {"page", &page}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				d.writeError(w, http.StatusBadRequest, "Invalid "+p.name)
				return 0, 0, false
			}
			*p.dst = n
		}
	}
	return limit, page, true
}

// writePage answers page of found as the vendor's list endpoints do.
func writePage[T any](w http.ResponseWriter, found []T, limit, page int) {
	lo, hi := window(len(found), limit, page)
	rows := append([]T{}, found[lo:hi]...)
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows, "total": len(found), "pages": pages(len(found), limit), "page": page})
}

// window is the bounds of one page of n items; empty past the last page.
func window(n, limit, page int) (lo, hi int) {
	if page > pages(n, limit) {
		return n, n
	}
	lo = (page - 1) * limit
	return lo, lo + min(limit, n-lo)
}

// pages is how many pages of limit items total items make.
func pages(total, limit int) int {
	if total == 0 {
		return 0
	}
	return (total-1)/limit + 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
