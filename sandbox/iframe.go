package sandbox

import (
	_ "embed"
	"net/http"
	"strconv"
)

// iframePage is the stand-in for the vendor's hosted AuthKit iframe
// (authkit.picaos.com, auth.withone.ai).
//
//go:embed iframe/index.html
var iframePage []byte

// serveIframe serves the stand-in iframe at /iframe/ (and /iframe.html), so a
// sandbox on its own origin is all a demo or test needs: the widget's baseUrl
// is http://<sandbox>/iframe/.
func serveIframe(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/iframe", "/iframe/", "/iframe/index.html", "/iframe.html":
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(iframePage)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(iframePage)
	}
}
