package vendor

import (
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
	c, _ := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"no route ` + testSecret + `"}`))
	})
	_, err := c.Connectors(context.Background(), nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "vendor_refused" || e.Retryable || strings.Contains(e.VendorMessage, testSecret) {
		t.Fatalf("%+v", e)
	}
	if _, found, err := c.VaultGet(context.Background(), "c1"); found || err != nil {
		t.Fatalf("a 404 for an item: found %v, %v", found, err)
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
	_, err := c.WhiteLabel(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != 504 || e.Code != "vendor_timeout" || Cause(err) != "timeout" {
		t.Fatalf("%v (%s)", err, Cause(err))
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
	c, calls := testClient(t, Pica, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/steal", http.StatusFound)
	})
	if _, err := c.WhiteLabel(context.Background()); err == nil || calls.Load() != 1 {
		t.Fatalf("%v after %d calls", err, calls.Load())
	}
}
