package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFaultsByNameAndOldAlias(t *testing.T) {
	s := New(Options{Provider: ProviderBoth})
	s.SetFault("authkit", Fault{Status: 503, Times: 1})
	if res, body := call(t, s, "POST", "/v1/authkit", DefaultSecret, `{}`, nil); res.StatusCode != 503 || body["type"] != "InternalServerError" {
		t.Fatalf("alias fault: %d %v", res.StatusCode, body)
	}
	if res, _ := call(t, s, "POST", "/v1/authkit", DefaultSecret, `{}`, nil); res.StatusCode != 200 {
		t.Fatalf("fault outlived Times: %d", res.StatusCode)
	}
	if s.Count("authkit") != 2 || s.Count(EndpointToken) != 2 || s.Requests()[0].Endpoint != EndpointToken {
		t.Fatalf("counts: authkit %d, token %d, %v", s.Count("authkit"), s.Count(EndpointToken), s.Requests()[0].Endpoint)
	}

	// A fault is answered in the dialect of the request.
	s.SetFault(EndpointToken, Fault{Status: 429, Page: 2})
	if res, _ := callOne(t, s, "POST", "/v1/authkit/token?page=1&limit=10", DefaultSecret, `{}`, nil); res.StatusCode != 200 {
		t.Fatalf("page 1 hit by a page 2 fault: %d", res.StatusCode)
	}
	res, body := callOne(t, s, "POST", "/v1/authkit/token?page=2&limit=10", DefaultSecret, `{}`, nil)
	checkOneError(t, 429, res.StatusCode, body)
	if res.Header.Get("x-pica-rate-limit-limit") != "" {
		t.Fatal("One answered with Pica's rate-limit headers")
	}
	res, _ = call(t, s, "POST", "/v1/authkit?page=2", DefaultSecret, `{}`, nil)
	if res.StatusCode != 429 || res.Header.Get("x-pica-rate-limit-remainings") != "0" {
		t.Fatalf("Pica 429: %d %v", res.StatusCode, res.Header)
	}
	s.ClearFaults()

	// The control route takes the same names.
	for _, name := range []string{"authkit", EndpointVaultList} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("PUT", "/sandbox/faults/"+name, strings.NewReader(`{"status":502}`)))
		if w.Code != 204 {
			t.Fatalf("PUT fault %s: %d", name, w.Code)
		}
	}
	if res, _ := call(t, s, "POST", "/v1/authkit", DefaultSecret, `{}`, nil); res.StatusCode != 502 {
		t.Fatalf("token after PUT /sandbox/faults/authkit: %d", res.StatusCode)
	}
	if res, _ := call(t, s, "GET", "/v1/vault/connections", DefaultSecret, "", nil); res.StatusCode != 502 {
		t.Fatalf("vault_list fault: %d", res.StatusCode)
	}
	if res, _ := call(t, s, "GET", "/v1/available-connectors", DefaultSecret, "", nil); res.StatusCode != 200 {
		t.Fatalf("connectors hit by others' faults: %d", res.StatusCode)
	}
}

func TestFaultKinds(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	flags := func(ctx context.Context) (*http.Response, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/users/flags", nil)
		req.Header.Set("X-Pica-Secret", DefaultSecret)
		res, err := srv.Client().Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		return res, body, err
	}

	s.SetFault(EndpointFlags, Fault{Reset: true, Times: 1})
	if _, body, err := flags(context.Background()); err == nil {
		t.Fatalf("reset: read the whole body %q", body)
	}
	s.SetFault(EndpointFlags, Fault{Garbage: true, Times: 1})
	if res, body, err := flags(context.Background()); err != nil || res.StatusCode != 200 || json.Valid(body) {
		t.Fatalf("garbage: %v %s", err, body)
	}
	// A fault on every endpoint, used up after one request.
	s.SetFault("*", Fault{Status: 503, RetryAfter: 7, Times: 1})
	if res, _, err := flags(context.Background()); err != nil || res.StatusCode != 503 || res.Header.Get("Retry-After") != "7" {
		t.Fatalf("503: %v %v", err, res)
	}
	if res, _, err := flags(context.Background()); err != nil || res.StatusCode != 200 {
		t.Fatalf("after the * fault: %v %v", err, res)
	}
	// A delay outlasts a client that gives up.
	s.SetFault(EndpointFlags, Fault{Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := flags(ctx); err == nil {
		t.Fatal("an hour's delay answered")
	}
}
