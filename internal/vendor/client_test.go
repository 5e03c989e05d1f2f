package vendor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClient is a Client of a stand-in vendor that answers with handler.
func testClient(t *testing.T, provider *Provider, handler http.HandlerFunc) (*Client, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	return New(Config{API: base, Provider: provider, Secret: testSecret, Transport: http.DefaultTransport,
		Timeout: 10 * time.Second, Limiter: NewLimiter(8, nil)}), &calls
}

func TestLongRetryAfterGoesToTheCaller(t *testing.T) {
	c, calls := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	start := time.Now()
	_, err := c.WhiteLabel(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != 30 || calls.Load() != 1 || time.Since(start) > time.Second {
		t.Fatalf("%v (%+v), %d calls, %v", err, e, calls.Load(), time.Since(start))
	}
}

func TestShortFailuresAreRetriedButNeverADelete(t *testing.T) {
	c, calls := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-pica-secret") != testSecret {
			t.Error("no secret on the call")
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, err := c.WhiteLabel(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "vendor_unavailable" || calls.Load() != maxAttempts {
		t.Fatalf("%v after %d calls, want 502 after %d", err, calls.Load(), maxAttempts)
	}
	calls.Store(0)
	_, _ = c.VaultDelete(context.Background(), "x")
	if calls.Load() != 1 {
		t.Fatalf("a delete was sent %d times", calls.Load())
	}
}

// TestTheGatewaysOwnRefusedCallIsItsFault: a 4xx to the client's own call
// (a wrong `api`) is 502, not the vendor's status; a 404 for an item is
// "not found".
func TestTheGatewaysOwnRefusedCallIsItsFault(t *testing.T) {
	c, calls := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"no route ` + testSecret + `"}`))
	})
	_, err := c.Connectors(context.Background(), nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "vendor_refused" || e.Retryable || strings.Contains(e.VendorMessage, testSecret) {
		t.Fatalf("%+v", e)
	}
	// A 404 for an item is the answer, asked once: not a failure to retry.
	calls.Store(0)
	if _, found, err := c.VaultGet(context.Background(), "c1"); found || err != nil || calls.Load() != 1 {
		t.Fatalf("a 404 for an item: found %v, %v, after %d calls", found, err, calls.Load())
	}
	if found, err := c.VaultDelete(context.Background(), "c1"); found || err != nil {
		t.Fatalf("deleting a connection that is gone: found %v, %v", found, err)
	}
}

// TestADeletedConnectionWasFound: a 2xx to a delete says the connection was
// there (the gateway answers 200, not 404).
func TestADeletedConnectionWasFound(t *testing.T) {
	c, _ := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete || r.URL.Path != "/v1/vault/connections/c1" {
			t.Errorf("delete sent as %s %s", r.Method, r.URL.Path)
		}
		_, _ = w.Write([]byte(`{}`))
	})
	if found, err := c.VaultDelete(context.Background(), "c1"); !found || err != nil {
		t.Fatalf("a deleted connection: found %v, %v", found, err)
	}
}

// TestCallsCarryJSONOnlyWhenTheyHaveABody: the token payload goes to the
// vendor as written, as JSON; a GET carries no body and no Content-Type.
func TestCallsCarryJSONOnlyWhenTheyHaveABody(t *testing.T) {
	type seen struct{ method, contentType, accept, body string }
	var mu sync.Mutex
	var calls []seen
	c, _ := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, seen{r.Method, r.Header.Get("Content-Type"), r.Header.Get("Accept"), string(body)})
		mu.Unlock()
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(`{"authkitWhitelist":false}`))
			return
		}
		_, _ = w.Write([]byte(`{"rows":[],"total":0,"pages":1,"page":1,"requestId":1}`))
	})
	payload := `{"identity":"alice","identityType":"user"}`
	if _, _, err := c.TokenPage(context.Background(), []byte(payload), "1", "100", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WhiteLabel(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{http.MethodPost, "application/json", "application/json", payload},
		{http.MethodGet, "", "application/json", ""},
	}
	if len(calls) != 2 || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("the vendor saw %+v, want %+v", calls, want)
	}
}

// TestARetryAfterOfOneSecondIsSatOut: the longest wait the client sits out
// itself is a second (maxRetryWait): the call is tried again after it and
// succeeds without troubling the caller.
func TestARetryAfterOfOneSecondIsSatOut(t *testing.T) {
	var first atomic.Bool
	c, calls := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte(`{"authkitWhitelist":true}`))
	})
	start := time.Now()
	white, err := c.WhiteLabel(context.Background())
	if err != nil || !white || calls.Load() != 2 {
		t.Fatalf("%v %v after %d calls", white, err, calls.Load())
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("tried again after %v, before the second the vendor asked for", waited)
	}
}

// TestAnswersAreCappedAt32MiB: an answer of 32 MiB is taken; one byte more
// is an answer the gateway cannot use, never one cut to size. (A delete
// reads its answer without parsing it, and is never retried.)
func TestAnswersAreCappedAt32MiB(t *testing.T) {
	for size, ok := range map[int]bool{maxBody: true, maxBody + 1: false} {
		body := bytes.Repeat([]byte("x"), size)
		c, _ := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) })
		found, err := c.VaultDelete(context.Background(), "c1")
		var e *Error
		switch {
		case ok && (err != nil || !found):
			t.Errorf("an answer of %d bytes: %v %v", size, found, err)
		case !ok && (!errors.As(err, &e) || e.Code != "vendor_bad_response" || e.Status != 502):
			t.Errorf("an answer of %d bytes: %v %v, want vendor_bad_response", size, found, err)
		}
	}
}

// TestAnAnswerIsReadIntoOneAllocation: readBody grows its buffer once from
// Content-Length (a token is ~90 KB, a big one MiBs), up to the cap.
func TestAnAnswerIsReadIntoOneAllocation(t *testing.T) {
	for _, size := range []int{1 << 20, maxBody} {
		data := bytes.Repeat([]byte("x"), size)
		resp := &http.Response{ContentLength: int64(size)}
		reader := bytes.NewReader(data)
		body := io.NopCloser(reader)
		var got int
		allocs := testing.AllocsPerRun(1, func() {
			reader.Reset(data)
			resp.Body = body
			b, err := readBody(resp, nil)
			if err != nil {
				t.Fatal(err)
			}
			got = len(b)
		})
		if got != size || allocs > 3 {
			t.Errorf("an answer of %d bytes: read %d in %v allocations, want at most 3", size, got, allocs)
		}
	}
}

// TestBackoffIsJitteredExponentialOrWhatTheVendorAsked: attempt n waits a
// random time in [c/2, c) with c = 100ms·2^(n-1), unless the vendor asked
// for a wait.
func TestBackoffIsJitteredExponentialOrWhatTheVendorAsked(t *testing.T) {
	for attempt := 1; attempt < maxAttempts; attempt++ {
		ceiling := 100 * time.Millisecond << (attempt - 1)
		for range 200 {
			if d := backoff(attempt, 0); d < ceiling/2 || d >= ceiling {
				t.Fatalf("attempt %d waits %v, want [%v, %v)", attempt, d, ceiling/2, ceiling)
			}
		}
	}
	if d := backoff(1, 700*time.Millisecond); d != 700*time.Millisecond {
		t.Fatalf("the vendor asked for 700ms, the client waits %v", d)
	}
}

func TestAnswersThatCannotBeUsedAreBadResponses(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":          `<html>`,
		"invalid row":       `{"rows":[1,],"total":1}`,
		"no rows":           `{"total":1}`,
		"cut short":         `{"rows":[{"id":1}`,
		"rows not an array": `{"rows":{}}`,
	} {
		c, _ := testClient(t, One, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) })
		_, _, tokenErr := c.TokenPage(context.Background(), nil, "1", "100", nil)
		_, connErr := c.Connectors(context.Background(), nil)
		for _, err := range []error{tokenErr, connErr} {
			var e *Error
			if !errors.As(err, &e) || e.Code != "vendor_bad_response" || e.Status != 502 {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
}

// TestOneSpeaksItsOwnDialect: One's secret header and token path.
func TestOneSpeaksItsOwnDialect(t *testing.T) {
	c, _ := testClient(t, One, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/authkit/token" || r.Header.Get("X-One-Secret") != testSecret || r.Header.Get("X-Pica-Secret") != "" ||
			r.URL.Query().Get("page") != "2" || r.URL.Query().Get("limit") != "50" {
			t.Errorf("One token call: %s %v", r.URL, r.Header)
		}
		_, _ = w.Write([]byte(`{"rows":[{"id":1}],"total":1,"pages":1,"page":2,"requestId":5}`))
	})
	body, page, err := c.TokenPage(context.Background(), []byte(`{}`), "2", "50", nil)
	if err != nil || string(page.Rows) != `{"id":1}` || string(page.RequestID) != "5" || !strings.HasPrefix(string(body), `{"rows"`) {
		t.Fatalf("%s %+v %v", body, page, err)
	}
}

func TestTimeoutIsAGatewayTimeout(t *testing.T) {
	release := make(chan struct{})
	c, _ := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c.timeout = 50 * time.Millisecond
	var retries atomic.Int64
	c.hooks.Retry = func(string) { retries.Add(1) }
	_, err := c.WhiteLabel(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != 504 || e.Code != "vendor_timeout" || Cause(err) != "timeout" {
		t.Fatalf("%v (%s)", err, Cause(err))
	}
	// Out of time is final: no retry is even begun (the metrics count them).
	if retries.Load() != 0 {
		t.Fatalf("%d retries of a call out of time", retries.Load())
	}
}

func TestCauseNamesWhyACallFailed(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	tls := httptest.NewUnstartedServer(http.NotFoundHandler()) // a CA nobody trusts
	tls.Config.ErrorLog = log.New(io.Discard, "", 0)
	tls.StartTLS()
	defer tls.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	for api, want := range map[string]string{
		"http://" + addr:              "connection refused",
		"http://no-such-host.invalid": "DNS: ",
		tls.URL:                       "TLS: the certificate is not trusted",
		strings.Replace(plain.URL, "http", "https", 1): "TLS: the server does not speak TLS",
	} {
		base, _ := url.Parse(api)
		c := New(Config{API: base, Provider: Pica, Secret: testSecret, Transport: http.DefaultTransport, Timeout: 5 * time.Second, Limiter: NewLimiter(1, nil)})
		_, err := c.WhiteLabel(context.Background())
		if got := Cause(err); !strings.HasPrefix(got, want) {
			t.Fatalf("%s: cause %q, want %q…", api, got, want)
		}
	}
	rejected := Failure(401, nil, nil, testSecret)
	if got := Cause(rejected); got != "the vendor answered 401 Unauthorized" {
		t.Fatalf("cause of a status: %q", got)
	}
}

// TestHooksSeeEveryAttempt: the gateway's hooks see each attempt with its
// outcome, may add headers to the request, and hear each retry.
func TestHooksSeeEveryAttempt(t *testing.T) {
	var n atomic.Int64
	c, _ := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Traceparent") == "" {
			t.Error("the hook's header did not go out")
		}
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(`{"authkitWhitelist":true}`))
	})
	var mu sync.Mutex
	var seen []string
	var retries int
	c.hooks = Hooks{
		Call: func(req *http.Request, endpoint string, attempt int) func(int, error) {
			req.Header.Set("Traceparent", "00-1-2-01")
			return func(status int, err error) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, endpoint+" "+req.Method+" "+http.StatusText(status))
			}
		},
		Retry: func(string) { retries++ },
	}
	if white, err := c.WhiteLabel(context.Background()); err != nil || !white {
		t.Fatal(white, err)
	}
	if strings.Join(seen, ", ") != "flags GET Bad Gateway, flags GET OK" || retries != 1 {
		t.Fatalf("hooks saw %v, %d retries", seen, retries)
	}
}

func TestLimiterRefusesBeyondItsBound(t *testing.T) {
	var changes []int
	l := NewLimiter(1, func(d int) { changes = append(changes, d) })
	release, err := l.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(); err == nil || err.(*Error).Code != "overloaded" || err.(*Error).RetryAfter != 1 {
		t.Fatalf("second call: %v", err)
	}
	release()
	if _, err := l.Acquire(); err != nil {
		t.Fatal("a released slot was not given again")
	}
	if len(changes) != 4 || changes[0] != 1 || changes[1] != 0 || changes[2] != -1 || changes[3] != 1 {
		t.Fatalf("watch heard %v", changes)
	}
}

func TestRedirectsAreNeverFollowed(t *testing.T) {
	// Every 3xx, 300 included, is a refused call, never the answer: its body
	// here would parse as one.
	for _, status := range []int{300, 301, 302, 307, 308} {
		c, calls := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "http://127.0.0.1:1/steal")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"authkitWhitelist":true}`))
		})
		_, err := c.WhiteLabel(context.Background())
		var e *Error
		if !errors.As(err, &e) || e.Code != "vendor_refused" || e.Status != 502 || calls.Load() != 1 {
			t.Fatalf("%d: %v after %d calls", status, err, calls.Load())
		}
	}
}

// TestVaultCallsReadTheConnections: the vault list and one connection are
// read as the vendor wrote them; a failed or wrong answer is an error,
// never a connection found.
func TestVaultCallsReadTheConnections(t *testing.T) {
	const row = `{"id":"c1","key":"k1","platform":"gmail","identity":"alice","identityType":"user"}`
	c, _ := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/vault/connections":
			if r.URL.Query().Get("identity") != "alice" {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			_, _ = w.Write([]byte(`{"rows":[` + row + `],"total":1}`))
		case "/v1/vault/connections/c1":
			_, _ = w.Write([]byte(row))
		case "/v1/vault/connections/other":
			_, _ = w.Write([]byte(row)) // not the one asked for
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	page, err := c.VaultList(context.Background(), url.Values{"identity": {"alice"}})
	if err != nil || len(page.Rows) != 1 || page.Rows[0].Key != "k1" {
		t.Fatalf("vault list: %+v, %v", page.Rows, err)
	}
	conn, found, err := c.VaultGet(context.Background(), "c1")
	if err != nil || !found || conn.Key != "k1" || !conn.OwnedBy("alice", "user") {
		t.Fatalf("vault get: %+v %v %v", conn, found, err)
	}
	for _, id := range []string{"other", "broken"} {
		if _, found, err := c.VaultGet(context.Background(), id); found || err == nil {
			t.Fatalf("vault get of %s: found %v, %v", id, found, err)
		}
	}
	if _, err := c.VaultList(context.Background(), url.Values{"identity": {"bob"}}); err == nil {
		t.Fatal("a failed vault list is no error")
	}
}
