package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// serveControl answers the sandbox's own routes, which Pica does not have:
//
//	POST   /sandbox/connections      {"requestId","connectionDefId"}: connect an account for
//	                                 the identity that token was issued to (as the iframe does),
//	                                 or {"platform","identity","identityType"} directly
//	GET    /sandbox/requests         the API requests received
//	PUT    /sandbox/faults/{endpoint} {"status","delay":"2s","reset","garbage","retry_after","page","times"}
//	DELETE /sandbox/faults           remove every fault
//	POST   /sandbox/oauth/start      {"requestId","connectionDefId"}: begin an OAuth flow,
//	                                 answers {"state","url"} (url: the consent page, relative)
//	GET    /sandbox/oauth/authorize?state=  the provider's consent page (POST: its form)
//	GET    /sandbox/oauth/state/{state}     the flow's OAuthResult, polled by the iframe
//
// The routes the stand-in AuthKit iframe calls allow any origin, as it may
// be served on another origin than the sandbox.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	iframeRoute := p == "/sandbox/connections" || p == "/sandbox/oauth/start" || strings.HasPrefix(p, "/sandbox/oauth/state/")
	if iframeRoute {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	switch {
	case p == "/sandbox/connections" && r.Method == http.MethodPost:
		s.postConnection(w, r)
	case p == "/sandbox/oauth/start" && r.Method == http.MethodPost:
		s.postOAuthStart(w, r)
	case strings.HasPrefix(p, "/sandbox/oauth/state/") && r.Method == http.MethodGet:
		result, ok := s.OAuthStatus(strings.TrimPrefix(p, "/sandbox/oauth/state/"))
		if !ok {
			writeError(w, http.StatusNotFound, ErrUnknownState.Error())
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, result)
	case iframeRoute:
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
	case p == "/sandbox/oauth/authorize":
		s.serveConsent(w, r)
	case p == "/sandbox/requests" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Requests())
	case strings.HasPrefix(p, "/sandbox/faults/") && r.Method == http.MethodPut:
		s.putFault(w, r)
	case p == "/sandbox/faults" && r.Method == http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "Not found")
	}
}

// linkRequest names a link session and a connector, as the iframe sends them.
type linkRequest struct {
	RequestID       int64 `json:"requestId"`
	ConnectionDefID int   `json:"connectionDefId"`
}

// postOAuthStart begins an OAuth flow, as the iframe does for a connector.
func (s *Server) postOAuthStart(w http.ResponseWriter, r *http.Request) {
	var in linkRequest
	if json.NewDecoder(r.Body).Decode(&in) != nil {
		writeError(w, http.StatusBadRequest, "requestId and connectionDefId are required")
		return
	}
	state, ok := s.StartOAuth(in.RequestID, in.ConnectionDefID)
	if !ok {
		writeError(w, http.StatusNotFound, "Unknown link session or connector")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"state": state, "url": "/sandbox/oauth/authorize?state=" + state})
}

// postConnection connects an account for a link session's identity, or
// for the identity it names.
func (s *Server) postConnection(w http.ResponseWriter, r *http.Request) {
	var in struct {
		linkRequest
		Platform     string `json:"platform"`
		Identity     string `json:"identity"`
		IdentityType string `json:"identityType"`
	}
	if json.NewDecoder(r.Body).Decode(&in) != nil || (in.Platform == "" && in.RequestID == 0) {
		writeError(w, http.StatusBadRequest, "requestId and connectionDefId, or platform, are required")
		return
	}
	if in.RequestID == 0 {
		writeJSON(w, http.StatusCreated, s.AddConnection(in.Identity, in.IdentityType, in.Platform))
		return
	}
	c, ok := s.Connect(in.RequestID, in.ConnectionDefID)
	if !ok {
		writeError(w, http.StatusNotFound, "Unknown link session or connector")
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

// putFault sets the fault PUT /sandbox/faults/{endpoint} describes.
func (s *Server) putFault(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Fault
		Delay string `json:"delay"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "invalid fault")
		return
	}
	if in.Delay != "" {
		d, err := time.ParseDuration(in.Delay)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid delay")
			return
		}
		in.Fault.Delay = d
	}
	s.SetFault(strings.TrimPrefix(r.URL.Path, "/sandbox/faults/"), in.Fault)
	w.WriteHeader(http.StatusNoContent)
}
