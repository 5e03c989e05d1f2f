// Package sandbox is a faithful local stand-in for the Pica API, for tests and
// the demo: the token endpoint with its pagination, user flags, the vault of
// connections, available connectors and the Passthrough API, answering with
// Pica's shapes, headers and V1 error envelope. Faults (status, delay,
// connection reset, garbage) and latency can be injected, and every request
// is recorded so tests can see exactly what reached Pica.
package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultSecret is the secret key the sandbox accepts unless told otherwise.
const DefaultSecret = "sk_test_1_sandbox0000000000000000"

// Options configure a sandbox.
type Options struct {
	// Secret is the one accepted x-pica-secret. Default: DefaultSecret.
	Secret string
	// Connectors is how many connectors are enabled in AuthKit. Default: 30;
	// negative for none.
	Connectors int
	// WhiteLabel is the account's authkitWhitelist flag.
	WhiteLabel bool
	// Latency is added to every API answer.
	Latency time.Duration
}

// Fault makes matching API requests fail. Zero fields do nothing.
type Fault struct {
	// Status answers with this status and Pica's error envelope.
	Status int `json:"status,omitempty"`
	// Delay waits this long before answering (or failing).
	Delay time.Duration `json:"delay,omitempty"`
	// Reset sends the status line and half a body, then drops the connection.
	Reset bool `json:"reset,omitempty"`
	// Garbage answers 200 with a body that is not JSON.
	Garbage bool `json:"garbage,omitempty"`
	// RetryAfter adds a Retry-After header, in seconds.
	RetryAfter int `json:"retry_after,omitempty"`
	// Page limits a fault on the authkit endpoint to that page.
	Page int `json:"page,omitempty"`
	// Times is how many requests the fault hits; 0 means all.
	Times int `json:"times,omitempty"`
}

// Connection is a row of the vault, as Pica lists it.
type Connection struct {
	ID              string   `json:"id"`
	PlatformVersion string   `json:"platformVersion"`
	Name            string   `json:"name"`
	Type            string   `json:"type"`
	Key             string   `json:"key"`
	Environment     string   `json:"environment"`
	Platform        string   `json:"platform"`
	Identity        string   `json:"identity"`
	IdentityType    string   `json:"identityType"`
	Description     string   `json:"description"`
	State           string   `json:"state"`
	Tags            []string `json:"tags"`
	Version         string   `json:"version"`
	Active          bool     `json:"active"`
	CreatedAt       string   `json:"createdAt"`
}

// Request is what the sandbox received, recorded for tests.
type Request struct {
	Endpoint string      `json:"endpoint"`
	Method   string      `json:"method"`
	Host     string      `json:"host"`
	Path     string      `json:"path"`
	RawQuery string      `json:"rawQuery"`
	Header   http.Header `json:"header"`
	Body     []byte      `json:"body"`
}

type connector struct {
	ID              int      `json:"id"`
	Name            string   `json:"name"`
	Key             string   `json:"key"`
	Platform        string   `json:"platform"`
	PlatformVersion string   `json:"platformVersion"`
	Status          string   `json:"status"`
	Description     string   `json:"description"`
	Category        string   `json:"category"`
	Image           string   `json:"image"`
	Tags            []string `json:"tags"`
	OAuth           bool     `json:"oauth"`
	Tools           int      `json:"tools"`
	Version         string   `json:"version"`
	Active          bool     `json:"active"`
	authkit         bool
}

// Server is the sandbox. It is an http.Handler.
type Server struct {
	opts        Options
	environment string

	connectors []connector
	// authkitRows are the enabled connectors as rows of POST /v1/authkit,
	// encoded once; like connectors, never changed after New.
	authkitRows [][]byte

	mu          sync.Mutex
	connections []Connection
	faults      map[string]*Fault
	requests    []Request
	requestID   int64
	rand        *rand.Rand
	// sessions remembers whom each token's requestId was issued to, so an
	// AuthKit iframe can connect an account for that identity.
	sessions map[int64]session
}

type session struct{ identity, identityType string }

var platformNames = []string{
	"gmail", "slack", "hubspot", "notion", "github", "salesforce", "google-calendar",
	"google-drive", "linear", "jira", "asana", "airtable", "shopify", "stripe", "zendesk",
	"intercom", "trello", "dropbox", "box", "quickbooks", "xero", "mailchimp", "sendgrid",
	"twilio", "zoom", "microsoft-teams", "outlook", "sharepoint", "clickup", "monday",
}

// New makes a sandbox with seeded connectors and an empty vault.
func New(opts Options) *Server {
	if opts.Secret == "" {
		opts.Secret = DefaultSecret
	}
	if opts.Connectors == 0 {
		opts.Connectors = 30
	}
	s := &Server{
		opts:        opts,
		environment: "test",
		faults:      make(map[string]*Fault),
		sessions:    make(map[int64]session),
		rand:        rand.New(rand.NewPCG(1, 2)), // the same keys every run
	}
	if strings.HasPrefix(opts.Secret, "sk_live_") {
		s.environment = "live"
	}
	// The enabled connectors, then a few that AuthKit does not offer.
	for i := 0; i < opts.Connectors+3; i++ {
		platform := fmt.Sprintf("platform-%d", i+1)
		if i < len(platformNames) {
			platform = platformNames[i]
		}
		s.connectors = append(s.connectors, connector{
			ID: i + 1, Name: title(platform), Key: "api::" + platform + "::v1", Platform: platform,
			PlatformVersion: "v1", Status: "GA", Description: "Connect your " + title(platform) + " account.",
			Category: "Productivity", Image: "https://assets.picaos.com/connectors/" + platform + ".svg",
			Tags: []string{}, OAuth: true, Tools: 10 + i, Version: "1.0.0", Active: true,
			authkit: i < opts.Connectors,
		})
		if !s.connectors[i].authkit {
			continue
		}
		c := s.connectors[i]
		row, _ := json.Marshal(map[string]any{
			"id": 1000 + c.ID, "connectionDefId": c.ID, "type": "api", "title": c.Name,
			"image": c.Image, "activatedAt": 1735689600000, "secretId": nil,
			"clientSecretDisplay": nil, "clientIdDisplay": nil, "scopes": nil,
			"environment": s.environment, "guide": nil, "createdAt": 1735689600000,
			"tags": []string{}, "active": true,
		})
		s.authkitRows = append(s.authkitRows, row)
	}
	return s
}

func title(platform string) string {
	words := strings.Split(platform, "-")
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

// AddConnection puts a connection in the vault, as the AuthKit flow would,
// and returns it with its key.
func (s *Server) AddConnection(identity, identityType, platform string) Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addConnectionLocked(identity, identityType, platform)
}

func (s *Server) addConnectionLocked(identity, identityType, platform string) Connection {
	var hexKey [16]byte
	for i := range hexKey {
		hexKey[i] = byte(s.rand.UintN(256))
	}
	key := s.environment + "::" + platform + "::default::" + hex.EncodeToString(hexKey[:])
	if identity != "" {
		key += "|" + strings.NewReplacer(" ", "-", ":", "-").Replace(identity)
	}
	id := sha256.Sum256([]byte(key))
	uuid := hex.EncodeToString(id[:16])
	c := Connection{
		ID:              uuid[0:8] + "-" + uuid[8:12] + "-" + uuid[12:16] + "-" + uuid[16:20] + "-" + uuid[20:32],
		PlatformVersion: "v1", Name: title(platform), Type: "api", Key: key,
		Environment: s.environment, Platform: platform, Identity: identity, IdentityType: identityType,
		State: "operational", Tags: []string{}, Version: "1.0.0", Active: true,
		CreatedAt: time.Now().UTC().Format(time.RFC3339),
	}
	s.connections = append(s.connections, c)
	return c
}

// Connect makes a connection for the identity a token was issued to, as the
// AuthKit iframe does when the user finishes connecting connectionDefID.
func (s *Server) Connect(requestID int64, connectionDefID int) (Connection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	who, ok := s.sessions[requestID]
	if !ok || connectionDefID < 1 || connectionDefID > len(s.connectors) || !s.connectors[connectionDefID-1].authkit {
		return Connection{}, false
	}
	if who.identityType == "" {
		who.identityType = "user"
	}
	return s.addConnectionLocked(who.identity, who.identityType, s.connectors[connectionDefID-1].Platform), true
}

// Connections returns the vault.
func (s *Server) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Connection(nil), s.connections...)
}

// SetFault makes requests to endpoint fail as f says. Endpoints: flags,
// authkit, vault_list, vault_get, vault_delete, connectors, passthrough, or *.
func (s *Server) SetFault(endpoint string, f Fault) {
	s.mu.Lock()
	s.faults[endpoint] = &f
	s.mu.Unlock()
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	clear(s.faults)
	s.mu.Unlock()
}

// Requests returns the API requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count is how many requests reached endpoint.
func (s *Server) Count(endpoint string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

// ServeHTTP answers as the Pica API does; /sandbox/ holds the test controls.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/sandbox/") {
		s.serveControl(w, r)
		return
	}
	endpoint, arg := classify(r)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Endpoint: endpoint, Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body,
	})
	s.mu.Unlock()

	if !sleep(r, s.opts.Latency) {
		return
	}
	if s.injectFault(w, r, endpoint) {
		return
	}
	if r.Header.Get("x-pica-secret") != s.opts.Secret || len(r.Header.Values("x-pica-secret")) != 1 {
		writeError(w, http.StatusUnauthorized, "You are not authorized to access this resource")
		return
	}
	switch endpoint {
	case "flags":
		writeJSON(w, http.StatusOK, map[string]any{
			"accessList": []string{}, "authkitWhitelist": s.opts.WhiteLabel, "earlyAccess": []string{}, "completedQuickstart": true,
		})
	case "authkit":
		s.serveAuthKit(w, r, body)
	case "vault_list":
		s.serveVaultList(w, r)
	case "vault_get", "vault_delete":
		s.serveVaultItem(w, r, arg)
	case "connectors":
		s.serveConnectors(w, r)
	case "passthrough":
		s.servePassthrough(w, r, arg, body)
	default:
		writeError(w, http.StatusNotFound, "Not found")
	}
}

// classify names the endpoint of a request and its argument.
func classify(r *http.Request) (endpoint, arg string) {
	p := r.URL.Path
	switch {
	case p == "/v1/users/flags" && r.Method == http.MethodGet:
		return "flags", ""
	case p == "/v1/authkit" && r.Method == http.MethodPost:
		return "authkit", ""
	case p == "/v1/vault/connections" && r.Method == http.MethodGet:
		return "vault_list", ""
	case strings.HasPrefix(p, "/v1/vault/connections/") && r.Method == http.MethodGet:
		return "vault_get", strings.TrimPrefix(p, "/v1/vault/connections/")
	case strings.HasPrefix(p, "/v1/vault/connections/") && r.Method == http.MethodDelete:
		return "vault_delete", strings.TrimPrefix(p, "/v1/vault/connections/")
	case p == "/v1/available-connectors" && r.Method == http.MethodGet:
		return "connectors", ""
	case strings.HasPrefix(p, "/v1/passthrough/"):
		return "passthrough", strings.TrimPrefix(r.URL.EscapedPath(), "/v1/passthrough")
	}
	return "unknown", ""
}

func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// injectFault applies the fault set for endpoint, if any, and reports whether
// it answered.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, endpoint string) bool {
	s.mu.Lock()
	f, ok := s.faults[endpoint]
	if !ok {
		f, ok = s.faults["*"]
	}
	if ok && f.Page != 0 && r.URL.Query().Get("page") != strconv.Itoa(f.Page) {
		ok = false
	}
	var fault Fault
	if ok {
		fault = *f
		if f.Times > 0 {
			if f.Times--; f.Times == 0 {
				for name, g := range s.faults {
					if g == f {
						delete(s.faults, name)
					}
				}
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	if !sleep(r, fault.Delay) {
		return true
	}
	if fault.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(fault.RetryAfter))
	}
	switch {
	case fault.Reset:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"rows":[{"id":1,`))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	case fault.Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<html>502 Bad Gateway</html>"))
	case fault.Status == http.StatusTooManyRequests:
		w.Header().Set("x-pica-rate-limit-limit", "100")
		w.Header().Set("x-pica-rate-limit-remainings", "0")
		w.Header().Set("x-pica-rate-limit-reset", strconv.FormatInt(time.Now().Add(2*time.Second).Unix(), 10))
		writeError(w, fault.Status, "Too many requests")
	case fault.Status != 0:
		writeError(w, fault.Status, http.StatusText(fault.Status))
	default:
		return false // a pure delay: answer normally
	}
	return true
}

func (s *Server) serveAuthKit(w http.ResponseWriter, r *http.Request, body []byte) {
	var payload struct {
		Identity      string `json:"identity"`
		IdentityType  string `json:"identityType"`
		IdentityType2 string `json:"identity_type"`
	}
	if len(body) > 0 && json.Unmarshal(body, &payload) != nil {
		writeError(w, http.StatusBadRequest, "Invalid request body")
		return
	}
	kind := payload.IdentityType
	if kind == "" {
		kind = payload.IdentityType2
	}
	switch kind {
	case "", "user", "team", "organization", "project":
	default:
		writeError(w, http.StatusBadRequest, "Invalid identityType")
		return
	}
	limit, page, ok := pagination(w, r, 100)
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
	for i, c := range window(len(rows), limit, page) {
		if i > 0 {
			answer = append(answer, ',')
		}
		answer = append(answer, rows[c]...)
	}
	answer = fmt.Appendf(answer, `],"total":%d}`, len(rows))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answer)
}

func (s *Server) serveVaultList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, ok := pagination(w, r, 20)
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
	rows := []Connection{}
	for _, i := range window(len(found), limit, page) {
		rows = append(rows, found[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows, "total": len(found), "pages": pages(len(found), limit), "page": page})
}

func (s *Server) serveVaultItem(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.connections {
		if c.ID != id {
			continue
		}
		if r.Method == http.MethodDelete {
			s.connections = append(s.connections[:i], s.connections[i+1:]...)
		}
		writeJSON(w, http.StatusOK, c)
		return
	}
	writeError(w, http.StatusNotFound, "Value not found")
}

func (s *Server) serveConnectors(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, ok := pagination(w, r, 20)
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
	rows := []connector{}
	for _, i := range window(len(found), limit, page) {
		rows = append(rows, found[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows, "total": len(found), "pages": pages(len(found), limit), "page": page})
}

// servePassthrough checks the connection key as Pica does, then answers as a
// third party that echoes what it received. Query __status=N makes the third
// party answer N; __bytes=N makes it send N bytes.
func (s *Server) servePassthrough(w http.ResponseWriter, r *http.Request, thirdPartyPath string, body []byte) {
	key := r.Header.Get("x-pica-connection-key")
	if key == "" {
		writeError(w, http.StatusBadRequest, "Connection header not found")
		return
	}
	if !strings.HasPrefix(key, s.environment+"::") {
		writeError(w, http.StatusNotFound, "Invalid connection header")
		return
	}
	known := false
	for _, c := range s.Connections() {
		known = known || c.Key == key
	}
	if !known {
		writeError(w, http.StatusNotFound, "Value not found")
		return
	}

	// What Pica forwards to the third party.
	forwarded := r.Header.Clone()
	for _, name := range []string{"x-pica-secret", "x-pica-connection-key", "content-length", "accept-encoding", "host"} {
		forwarded.Del(name)
	}
	q := r.URL.Query()
	status := http.StatusOK
	if n, err := strconv.Atoi(q.Get("__status")); err == nil && n >= 200 && n <= 599 {
		status = n
	}
	thirdParty := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Request-Id": {"tp-" + strconv.Itoa(len(body))}}
	var answer []byte
	if n, err := strconv.Atoi(q.Get("__bytes")); err == nil && n >= 0 {
		thirdParty.Set("Content-Type", "application/octet-stream")
		answer = []byte(strings.Repeat("x", n))
	} else {
		sum := sha256.Sum256(body)
		echo := map[string]any{
			"method": r.Method, "path": thirdPartyPath, "rawQuery": r.URL.RawQuery, "headers": forwarded,
			"bodyLength": len(body), "bodySha256": hex.EncodeToString(sum[:]),
		}
		if len(body) <= 64<<10 {
			echo["body"] = string(body)
		}
		answer, _ = json.Marshal(echo)
	}
	thirdParty.Set("Content-Length", strconv.Itoa(len(answer)))

	h := w.Header()
	names := make([]string, 0, len(thirdParty))
	for name := range thirdParty {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		h["X-Pica-Passthrough-"+name] = thirdParty[name]
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(answer)))
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

// pagination reads limit and page as Pica does.
func pagination(w http.ResponseWriter, r *http.Request, defaultLimit int) (limit, page int, ok bool) {
	limit, page = defaultLimit, 1
	q := r.URL.Query()
	for name, dst := range map[string]*int{"limit": &limit, "page": &page} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				writeError(w, http.StatusBadRequest, "Invalid "+name)
				return 0, 0, false
			}
			*dst = n
		}
	}
	return limit, page, true
}

// window is the indexes of one page of n items.
func window(n, limit, page int) []int {
	var idx []int
	for i := (page - 1) * limit; i < n && i < page*limit; i++ {
		idx = append(idx, i)
	}
	return idx
}

func pages(total, limit int) int {
	return (total + limit - 1) / limit
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// picaErrorTypes are the V1 error types and codes by status.
var picaErrorTypes = map[int]struct {
	name string
	code int
}{
	400: {"BadRequest", 2000}, 409: {"Conflict", 2001}, 403: {"Forbidden", 2002},
	500: {"InternalServerError", 2003}, 405: {"MethodNotAllowed", 2004}, 404: {"NotFound", 2005},
	429: {"TooManyRequests", 2009}, 401: {"Unauthorized", 2010},
}

// writeError answers in Pica's V1 error envelope.
func writeError(w http.ResponseWriter, status int, message string) {
	t, ok := picaErrorTypes[status]
	if !ok {
		t = picaErrorTypes[500]
		if status < 500 {
			t = picaErrorTypes[400]
		}
	}
	snake := strings.ToLower(strings.Join(splitCamel(t.name), "_"))
	writeJSON(w, status, map[string]any{
		"type": t.name, "code": t.code, "status": status, "key": "err::application::" + snake,
		"message": message, "meta": nil,
	})
}

func splitCamel(s string) []string {
	var words []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			words = append(words, s[start:i])
			start = i
		}
	}
	return append(words, s[start:])
}
