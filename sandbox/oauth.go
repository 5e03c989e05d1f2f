package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
)

// OAuth flows, as One runs them for its hosted iframe. The iframe starts a
// flow for its link session and a connector and gets an unguessable state;
// the user consents on the provider's page (here a stand-in served under
// /sandbox/oauth/authorize), which completes the connection; the iframe
// learns the outcome by polling with the state. The real One polls
// /v1/connections/oauth/check?state=; the sandbox keeps it under /sandbox/.

// OAuthResult is the outcome of an OAuth flow.
type OAuthResult struct {
	// State names the flow.
	State string `json:"state"`
	// Status is pending, success or failed.
	Status string `json:"status"`
	// Platform is the connector's platform, such as gmail.
	Platform string `json:"platform"`
	// Connection is the connection made, when Status is success.
	Connection *Connection `json:"connection,omitempty"`
	// Error says why, when Status is failed.
	Error string `json:"error,omitempty"`
}

// The statuses of an OAuth flow.
const (
	OAuthPending = "pending"
	OAuthSuccess = "success"
	OAuthFailed  = "failed"
)

// oauthFlow is an OAuth flow, keyed by its state in Server.oauth.
type oauthFlow struct {
	who    session
	result OAuthResult
}

// ErrUnknownState is returned for a state the sandbox did not issue.
var ErrUnknownState = errors.New("unknown OAuth state")

// ErrFlowDone is returned when an OAuth flow has already finished.
var ErrFlowDone = errors.New("OAuth flow already finished")

// StartOAuth begins an OAuth flow for the identity a token's requestId was
// issued to and the connector connectionDefID, and returns its state. It is
// false for an unknown link session or connector.
func (s *Server) StartOAuth(requestID int64, connectionDefID int) (string, bool) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	state := hex.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	who, platform, ok := s.linkLocked(requestID, connectionDefID)
	if !ok || len(s.oauth) >= 100_000 {
		return "", false
	}
	s.oauth[state] = &oauthFlow{who: who, result: OAuthResult{State: state, Status: OAuthPending, Platform: platform}}
	return state, true
}

// FinishOAuth ends a pending flow as the provider's consent page does: with
// allow, the connection is made for the flow's identity; without, the flow
// fails with access_denied.
func (s *Server) FinishOAuth(state string, allow bool) (OAuthResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.oauth[state]
	switch {
	case !ok:
		return OAuthResult{}, ErrUnknownState
	case f.result.Status != OAuthPending:
		return f.result, ErrFlowDone
	case !allow:
		f.result.Status, f.result.Error = OAuthFailed, "access_denied"
	default:
		c := s.addConnectionLocked(f.who.identity, f.who.identityType, f.result.Platform)
		f.result.Status, f.result.Connection = OAuthSuccess, &c
	}
	return f.result, nil
}

// OAuthStatus is where the flow named by state stands.
func (s *Server) OAuthStatus(state string) (OAuthResult, bool) {
	f, ok := s.flow(state)
	return f.result, ok
}

// flow is a copy of the flow named by state.
func (s *Server) flow(state string) (oauthFlow, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.oauth[state]
	if !ok {
		return oauthFlow{}, false
	}
	return *f, true
}

// splitState separates the state the sandbox issued from the return URL that
// @withone/auth appends to it ("{state}~{base64url(return URL)}") before it
// sends the tab to the provider. Without a return URL (popup mode), ret is "".
func splitState(raw string) (state, ret string, err error) {
	state, encoded, found := strings.Cut(raw, "~")
	if !found {
		return state, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(encoded, "="))
	if err != nil {
		return "", "", errors.New("the return URL in the state is not base64url")
	}
	u, err := url.Parse(string(b))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", errors.New("the return URL in the state is not an http(s) URL")
	}
	return state, u.String(), nil
}

// returnURL is where the provider's callback sends the tab back: the app's
// page with one_auth_state (and one_auth_error on failure), which makes
// @withone/auth reopen the iframe to check the state.
func returnURL(ret string, r OAuthResult) string {
	u, _ := url.Parse(ret)
	q := u.Query()
	q.Set("one_auth_state", r.State)
	if r.Status == OAuthFailed {
		q.Set("one_auth_error", r.Error)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
