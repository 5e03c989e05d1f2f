package sandbox

import (
	"net/http"
	"strconv"
	"time"
)

// Fault makes matching API requests fail. Zero fields do nothing.
type Fault struct {
	// Status answers with this status and the dialect's error envelope.
	Status int `json:"status,omitempty"`
	// Delay waits this long before answering (or failing).
	Delay time.Duration `json:"delay,omitempty"`
	// Reset sends the status line and half a body, then drops the connection.
	Reset bool `json:"reset,omitempty"`
	// Garbage answers 200 with a body that is not JSON.
	Garbage bool `json:"garbage,omitempty"`
	// RetryAfter adds a Retry-After header, in seconds.
	RetryAfter int `json:"retry_after,omitempty"`
	// Page limits a fault to requests for that page (query page=N), such
	// as one page of the token endpoint.
	Page int `json:"page,omitempty"`
	// Times is how many requests the fault hits; 0 means all.
	Times int `json:"times,omitempty"`
}

// SetFault makes requests to endpoint fail as f says. Endpoints are the
// Endpoint constants, or * for all; "authkit" is an old name of
// EndpointToken.
func (s *Server) SetFault(endpoint string, f Fault) {
	s.mu.Lock()
	s.faults[canonicalEndpoint(endpoint)] = &f
	s.mu.Unlock()
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	clear(s.faults)
	s.mu.Unlock()
}

// sleep waits d, or until the client gives up, and reports whether it waited.
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

// takeFault returns the fault that applies to a request to endpoint, using up
// one of its Times.
func (s *Server) takeFault(r *http.Request, endpoint string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := endpoint
	f, ok := s.faults[name]
	if !ok {
		name = "*"
		f, ok = s.faults[name]
	}
	if !ok || (f.Page != 0 && r.URL.Query().Get("page") != strconv.Itoa(f.Page)) {
		return Fault{}, false
	}
	fault := *f
	if f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(s.faults, name)
		}
	}
	return fault, true
}

// injectFault applies the fault set for endpoint, if any, and reports whether
// it answered.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, d *dialect, endpoint string) bool {
	fault, ok := s.takeFault(r, endpoint)
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
		if d == picaDialect { // One's rate-limit headers are not known
			w.Header().Set("x-pica-rate-limit-limit", "100")
			w.Header().Set("x-pica-rate-limit-remainings", "0")
			w.Header().Set("x-pica-rate-limit-reset", strconv.FormatInt(time.Now().Add(2*time.Second).Unix(), 10))
		}
		d.writeError(w, fault.Status, "Too many requests")
	case fault.Status != 0:
		d.writeError(w, fault.Status, http.StatusText(fault.Status))
	default:
		return false // a pure delay: answer normally
	}
	return true
}
