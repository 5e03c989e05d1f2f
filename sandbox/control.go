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
//
// /sandbox/connections allows any origin, as the stand-in AuthKit iframe of
// the demo and the browser test calls it cross-origin.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/sandbox/connections":
		w.Header().Set("Access-Control-Allow-Origin", "*")
		switch r.Method {
		case http.MethodOptions:
			w.Header().Set("Access-Control-Allow-Methods", "POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.WriteHeader(http.StatusNoContent)
		case http.MethodPost:
			var in struct {
				RequestID       int64  `json:"requestId"`
				ConnectionDefID int    `json:"connectionDefId"`
				Platform        string `json:"platform"`
				Identity        string `json:"identity"`
				IdentityType    string `json:"identityType"`
			}
			if json.NewDecoder(r.Body).Decode(&in) != nil || (in.Platform == "" && in.RequestID == 0) {
				writeError(w, http.StatusBadRequest, "requestId and connectionDefId, or platform, are required")
				return
			}
			if in.RequestID != 0 {
				c, ok := s.Connect(in.RequestID, in.ConnectionDefID)
				if !ok {
					writeError(w, http.StatusNotFound, "Unknown link session or connector")
					return
				}
				writeJSON(w, http.StatusCreated, c)
				return
			}
			if in.IdentityType == "" {
				in.IdentityType = "user"
			}
			writeJSON(w, http.StatusCreated, s.AddConnection(in.Identity, in.IdentityType, in.Platform))
		default:
			writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		}
	case r.URL.Path == "/sandbox/requests" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Requests())
	case strings.HasPrefix(r.URL.Path, "/sandbox/faults/") && r.Method == http.MethodPut:
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
	case r.URL.Path == "/sandbox/faults" && r.Method == http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "Not found")
	}
}
