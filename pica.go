package caddyauthkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// maxPicaBody caps what is read of one Pica answer.
const maxPicaBody = 32 << 20

// maxAttempts is how often an idempotent Pica call is tried.
const maxAttempts = 3

// maxRetryWait is the longest wait Pica may ask for that the gateway sits
// out itself; a longer one goes to the caller as Retry-After at once.
const maxRetryWait = time.Second

// picaClient makes the gateway's own calls to the Pica API (everything but
// passthrough, which goes through reverse_proxy).
type picaClient struct {
	base    *url.URL
	secret  string
	client  *http.Client
	timeout time.Duration
	slots   chan struct{}
	logger  *zap.Logger
	metrics *metrics
	sleep   func(ctx context.Context, d time.Duration) error
}

// picaCall is one request to Pica. Endpoint names it in logs and metrics.
type picaCall struct {
	Endpoint   string
	Method     string
	Path       string
	Query      url.Values
	Body       []byte
	Idempotent bool
	// Buffer, when set, receives the answer, which then aliases it.
	Buffer *bytes.Buffer
}

// picaStatusError is a non-2xx answer from Pica.
type picaStatusError struct {
	Status     int
	RetryAfter int
}

func (e *picaStatusError) Error() string { return fmt.Sprintf("pica answered %d", e.Status) }

func newPicaClient(base *url.URL, secret string, timeout time.Duration, maxConcurrent int, logger *zap.Logger, m *metrics) *picaClient {
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	return &picaClient{
		base:    base,
		secret:  secret,
		client:  &http.Client{Transport: transport, CheckRedirect: noRedirects},
		timeout: timeout,
		slots:   make(chan struct{}, maxConcurrent),
		logger:  logger,
		metrics: m,
		sleep:   sleepContext,
	}
}

// noRedirects keeps the secret from following a redirect anywhere.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (p *picaClient) close() {
	p.client.CloseIdleConnections()
}

// do makes call within the client's time budget and returns the body of a 2xx
// answer. Idempotent calls are retried on connection errors, 429, 502, 503 and
// 504 with jittered backoff that honours Retry-After. Errors come back as the
// envelope the caller should see, except a *picaStatusError for 4xx answers
// the caller may want to interpret (e.g. 404).
func (p *picaClient) do(ctx context.Context, call picaCall) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	default:
		return nil, retryLater(http.StatusServiceUnavailable, "overloaded", "too many calls to Pica in flight", 1)
	}

	var lastErr error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		body, wait, err := p.attempt(ctx, call, attempt)
		if err == nil {
			return body, nil
		}
		lastErr = err
		if !call.Idempotent || wait < 0 || wait > maxRetryWait || attempt == maxAttempts {
			break
		}
		p.metrics.retry(call.Endpoint)
		if p.sleep(ctx, backoff(attempt, wait)) != nil {
			break
		}
	}
	return nil, p.explain(ctx, lastErr)
}

// attempt makes one request. wait is negative when the failure is final, else
// the delay Pica asked for (0 when it did not say).
func (p *picaClient) attempt(ctx context.Context, call picaCall, attempt int) (body []byte, wait time.Duration, err error) {
	u := *p.base
	u.Path += call.Path
	u.RawQuery = call.Query.Encode()
	var reqBody io.Reader
	if call.Body != nil {
		reqBody = bytes.NewReader(call.Body)
	}
	req, err := http.NewRequestWithContext(ctx, call.Method, u.String(), reqBody)
	if err != nil {
		return nil, -1, err
	}
	req.Header.Set("x-pica-secret", p.secret)
	req.Header.Set("Accept", "application/json")
	if call.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	resp, err := p.client.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		body, err = readBody(resp, call.Buffer)
		resp.Body.Close()
		if err == nil && len(body) > maxPicaBody {
			err = errors.New("answer too large")
		}
	}
	duration := time.Since(start)
	p.observe(call.Endpoint, status, err, duration, attempt)

	switch {
	case err != nil:
		// A cancelled or expired context is final; a network error may pass.
		if ctx.Err() != nil {
			return nil, -1, ctx.Err()
		}
		return nil, 0, err
	case status >= 200 && status < 300:
		return body, 0, nil
	}
	statusErr := &picaStatusError{Status: status, RetryAfter: retryAfterSeconds(resp.Header)}
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return nil, time.Duration(statusErr.RetryAfter) * time.Second, statusErr
	}
	return nil, -1, statusErr
}

// readBody reads at most maxPicaBody+1 bytes into buf (a new one when nil),
// grown once from Content-Length.
func readBody(resp *http.Response, buf *bytes.Buffer) ([]byte, error) {
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if n := resp.ContentLength; n > 0 && n <= maxPicaBody {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, maxPicaBody+1))
	return buf.Bytes(), err
}

func (p *picaClient) observe(endpoint string, status int, err error, d time.Duration, attempt int) {
	outcome := strconv.Itoa(status)
	if err != nil {
		outcome = "error"
	}
	p.metrics.picaCall(endpoint, outcome, d)
	if c := p.logger.Check(zapcore.DebugLevel, "pica call"); c != nil {
		fields := []zap.Field{
			zap.String("endpoint", endpoint),
			zap.Int("status", status),
			zap.Duration("duration", d),
			zap.Int("attempt", attempt),
		}
		if err != nil {
			// Never the *url.Error itself: its URL carries identities and keys.
			fields = append(fields, zap.String("error", innerError(err)))
		}
		c.Write(fields...)
	}
}

// explain turns a failed call into what the caller should be told.
func (p *picaClient) explain(ctx context.Context, err error) error {
	var se *picaStatusError
	switch {
	case errors.As(err, &se):
		switch {
		case se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden:
			return newError(http.StatusBadGateway, "pica_rejected_secret", "Pica rejected the gateway's secret key")
		case se.Status == http.StatusTooManyRequests:
			return retryLater(http.StatusTooManyRequests, "pica_rate_limited", "Pica is rate-limiting this account", se.RetryAfter)
		case se.Status >= 500:
			return newError(http.StatusBadGateway, "pica_unavailable", fmt.Sprintf("Pica answered %d", se.Status))
		}
		return se
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return newError(http.StatusGatewayTimeout, "pica_timeout", "Pica did not answer in time")
	case errors.Is(err, context.Canceled):
		return newError(499, "client_closed", "the client went away")
	}
	return newError(http.StatusBadGateway, "pica_unreachable", "Pica could not be reached")
}

// unexpected is the envelope for a 4xx answer the gateway did not expect: its
// own request was wrong, so it is the gateway's fault, not the caller's.
func unexpected(err error) error {
	var se *picaStatusError
	if errors.As(err, &se) {
		return newError(http.StatusBadGateway, "pica_bad_response", fmt.Sprintf("Pica answered %d", se.Status))
	}
	return err
}

func badAnswer() error {
	return newError(http.StatusBadGateway, "pica_bad_response", "Pica's answer could not be read")
}

// backoff is exponential with full jitter, or what Pica asked for.
func backoff(attempt int, asked time.Duration) time.Duration {
	if asked > 0 {
		return asked
	}
	ceiling := 100 * time.Millisecond << (attempt - 1)
	return ceiling/2 + rand.N(ceiling/2)
}

func sleepContext(ctx context.Context, d time.Duration) error {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return context.DeadlineExceeded // not worth waiting: the budget ends first
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryAfterSeconds reads Retry-After (seconds) or Pica's x-pica-rate-limit-reset.
func retryAfterSeconds(h http.Header) int {
	for _, name := range []string{"Retry-After", "x-pica-rate-limit-reset"} {
		if n, err := strconv.Atoi(h.Get(name)); err == nil && n > 0 {
			if n > 1_000_000_000_000 { // Unix milliseconds
				n /= 1000
			}
			if n > 1_000_000_000 { // a Unix time, not a delay
				n = int(time.Until(time.Unix(int64(n), 0)).Seconds()) + 1
			}
			if n > 0 && n <= 3600 {
				return n
			}
		}
	}
	return 0
}

func innerError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
