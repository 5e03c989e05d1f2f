package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// servePassthrough checks the connection key as the vendor does, then answers
// as a third party that echoes what it received. The third party answers
// status N for the path /status/N (or the query __status=N), and N bytes for
// the query __bytes=N. A 401 carries WWW-Authenticate, as a provider whose
// grant was revoked answers.
func (s *Server) servePassthrough(w http.ResponseWriter, r *http.Request, d *dialect, thirdPartyPath string, body []byte) {
	key := r.Header.Get(d.connectionKeyHeader())
	if key == "" {
		d.writeError(w, http.StatusBadRequest, "Connection header not found")
		return
	}
	if !strings.HasPrefix(key, s.environment+"::") {
		d.writeError(w, http.StatusNotFound, "Invalid connection header")
		return
	}
	if !s.hasKey(key) {
		d.writeError(w, http.StatusNotFound, "Value not found")
		return
	}
	if action := r.Header.Get(d.actionIDHeader()); action != "" && !strings.HasPrefix(action, "conn_mod_def::") {
		d.writeError(w, http.StatusNotFound, "Action not found")
		return
	}

	// What the vendor forwards to the third party.
	forwarded := r.Header.Clone()
	for _, name := range []string{d.secretHeader(), d.connectionKeyHeader(), "content-length", "accept-encoding", "host"} {
		forwarded.Del(name)
	}
	status := thirdPartyStatus(r, thirdPartyPath)
	thirdParty := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Request-Id": {"tp-" + strconv.Itoa(len(body))}}
	if status == http.StatusUnauthorized {
		thirdParty.Set("Www-Authenticate", `Bearer error="invalid_token"`)
	}
	var answer []byte
	if n, err := strconv.Atoi(r.URL.Query().Get("__bytes")); err == nil && n >= 0 {
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
	for name, values := range thirdParty {
		h[http.CanonicalHeaderKey(d.passthroughPrefix()+name)] = values
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(answer)))
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

// hasKey reports whether a connection in the vault has key.
func (s *Server) hasKey(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.connections, func(c Connection) bool { return c.Key == key })
}

// thirdPartyStatus is the status the echoing third party answers with.
func thirdPartyStatus(r *http.Request, path string) int {
	v := r.URL.Query().Get("__status")
	if rest, ok := strings.CutPrefix(path, "/status/"); ok {
		v, _, _ = strings.Cut(rest, "/")
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 200 && n <= 599 {
		return n
	}
	return http.StatusOK
}
