// Package sandbox is a faithful local stand-in for the vendor's API (Pica,
// and One, its renamed successor), for tests and the demo: the token endpoint
// with its pagination, user flags, the vault of connections, available
// connectors and the Passthrough API, answering with the vendor's shapes,
// headers and error envelopes in either dialect. Faults (status, delay,
// connection reset, garbage) and latency can be injected, and every request
// is recorded so tests can see exactly what reached the vendor. It also
// serves a stand-in of the hosted AuthKit iframe and of a provider's OAuth
// consent page, so a browser can run the whole connect flow locally.
package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultSecret is the secret key the sandbox accepts unless told otherwise.
const DefaultSecret = "sk_test_1_sandbox0000000000000000"

// Options configure a sandbox.
type Options struct {
	// Secret is the one accepted secret key (x-pica-secret or
	// x-one-secret). Default: DefaultSecret.
	Secret string
	// Provider is the dialect spoken: ProviderPica (default), ProviderOne,
	// or ProviderBoth. New panics on any other value.
	Provider string
	// Connectors is how many connectors are enabled in AuthKit. Default: 30;
	// negative for none.
	Connectors int
	// WhiteLabel is the account's authkitWhitelist flag.
	WhiteLabel bool
	// Latency is added to every API answer.
	Latency time.Duration
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
	// Endpoint is one of the Endpoint constants.
	Endpoint string `json:"endpoint"`
	// Dialect is the provider the request was answered as: pica or one.
	Dialect string `json:"dialect"`
	// The request line, the query as written.
	Method, Host, Path, RawQuery string
	Header                       http.Header `json:"header"`
	Body                         []byte      `json:"body"`
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
	// authkitRows are the enabled connectors as rows of the token endpoint,
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
	// oauth holds the OAuth flows in progress or done, by state.
	oauth map[string]*oauthFlow
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
	if err := checkProvider(opts.Provider); err != nil {
		panic("sandbox: " + err.Error())
	}
	if opts.Provider == "" {
		opts.Provider = ProviderPica
	}
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
		oauth:       make(map[string]*oauthFlow),
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
// and returns it with its key. An empty identityType means user.
func (s *Server) AddConnection(identity, identityType, platform string) Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addConnectionLocked(identity, identityType, platform)
}

func (s *Server) addConnectionLocked(identity, identityType, platform string) Connection {
	if identityType == "" {
		identityType = "user"
	}
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
	who, platform, ok := s.linkLocked(requestID, connectionDefID)
	if !ok {
		return Connection{}, false
	}
	return s.addConnectionLocked(who.identity, who.identityType, platform), true
}

// linkLocked is whom a token's requestId was issued to and the platform of
// connectionDefID, if both are known and the connector is in AuthKit.
func (s *Server) linkLocked(requestID int64, connectionDefID int) (who session, platform string, ok bool) {
	who, ok = s.sessions[requestID]
	if !ok || connectionDefID < 1 || connectionDefID > len(s.connectors) || !s.connectors[connectionDefID-1].authkit {
		return session{}, "", false
	}
	return who, s.connectors[connectionDefID-1].Platform, true
}

// Connections returns the vault.
func (s *Server) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Connection(nil), s.connections...)
}

// Requests returns the API requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count is how many requests reached endpoint; "authkit" is an old name of
// EndpointToken.
func (s *Server) Count(endpoint string) int {
	endpoint = canonicalEndpoint(endpoint)
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
