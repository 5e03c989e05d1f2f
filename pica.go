package caddyauthkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The vendor's endpoints, by the one name the metrics, the logs and the
// sandbox's faults use.
const (
	endpointToken       = "token"
	endpointFlags       = "flags"
	endpointVaultList   = "vault_list"
	endpointVaultGet    = "vault_get"
	endpointVaultDelete = "vault_delete"
	endpointConnectors  = "connectors"
	endpointPassthrough = "passthrough"
)

const (
	// maxVendorBody caps what is read of one answer.
	maxVendorBody = 32 << 20
	// maxAttempts is how often an idempotent call is tried.
	maxAttempts = 3
	// maxRetryWait is the longest wait the vendor may ask for that the
	// gateway sits out itself; a longer one goes to the caller at once.
	maxRetryWait = time.Second
)

// picaClient is the one road to the vendor's API (Pica or One), for every
// route: it rides on the guest reverse_proxy's transport, so the TLS, proxy
// and dial settings of the `proxy` block apply to all of them, and it holds
// the slots that bound the calls in flight, passthrough included.
type picaClient struct {
	base     *url.URL
	provider *provider
	secret   string
	client   *http.Client
	timeout  time.Duration
	slots    chan struct{}
	logger   *zap.Logger
	metrics  *metrics
}

// vendorCall is one request to the vendor.
type vendorCall struct {
	endpoint   string
	method     string
	path       string
	query      url.Values
	body       []byte
	idempotent bool
	// buffer, when set, receives the answer, which then aliases it.
	buffer *bytes.Buffer
}

// vendorStatus is a 4xx answer a caller of do may interpret (404, say).
type vendorStatus struct {
	status int
	err    *apiError // what to tell the caller if it does not
}

func (e *vendorStatus) Error() string { return e.err.Error() }

func newPicaClient(base *url.URL, p *provider, secret string, transport http.RoundTripper, timeout time.Duration, maxConcurrent int, logger *zap.Logger, m *metrics) *picaClient {
	return &picaClient{
		base:     base,
		provider: p,
		secret:   secret,
		// Never follow a redirect: the secret would go with it.
		client:  &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		timeout: timeout,
		slots:   make(chan struct{}, maxConcurrent),
		logger:  logger,
		metrics: m,
	}
}

// acquire takes one of the max_concurrent slots, or says the gateway is
// overloaded.
func (p *picaClient) acquire() (release func(), err error) {
	select {
	case p.slots <- struct{}{}:
		p.metrics.inFlight.Inc()
		return func() { <-p.slots; p.metrics.inFlight.Dec() }, nil
	default:
		p.metrics.overloaded.Inc()
		return nil, retryLater(http.StatusServiceUnavailable, "overloaded", "too many calls to the vendor in flight", 1)
	}
}

// do makes call within the client's time budget and returns the body of a
// 2xx answer. Idempotent calls are retried on network errors, 429, 502, 503
// and 504 with jittered backoff that honours Retry-After. Errors are the
// envelope to answer, or a *vendorStatus for a 4xx the caller may interpret.
func (p *picaClient) do(ctx context.Context, call vendorCall) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	release, err := p.acquire()
	if err != nil {
		return nil, err
	}
	defer release()

	var lastErr error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		body, wait, err := p.attempt(ctx, call, attempt)
		if err == nil {
			return body, nil
		}
		lastErr = err
		if !call.idempotent || wait < 0 || wait > maxRetryWait || attempt == maxAttempts {
			break
		}
		p.metrics.retry(call.endpoint)
		if sleepContext(ctx, backoff(attempt, wait)) != nil {
			break
		}
	}
	return nil, p.explain(ctx, lastErr)
}

// attempt makes one request. wait is negative when the failure is final,
// else the delay the vendor asked for (0 when it did not say).
func (p *picaClient) attempt(ctx context.Context, call vendorCall, attempt int) (body []byte, wait time.Duration, err error) {
	u := *p.base
	u.Path += call.path
	u.RawQuery = call.query.Encode()
	var reqBody io.Reader
	if call.body != nil {
		reqBody = bytes.NewReader(call.body)
	}
	req, err := http.NewRequestWithContext(ctx, call.method, u.String(), reqBody)
	if err != nil {
		return nil, -1, err
	}
	req.Header.Set(p.provider.secretHeader, p.secret)
	req.Header.Set("Accept", "application/json")
	if call.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	resp, err := p.client.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		body, err = readBody(resp, call.buffer)
		resp.Body.Close()
		if err == nil && len(body) > maxVendorBody {
			err = errors.New("answer too large")
		}
	}
	p.observe(ctx, call, status, err, time.Since(start), attempt)

	switch {
	case err != nil:
		if ctx.Err() != nil {
			return nil, -1, ctx.Err() // cancelled or out of time: final
		}
		if status != 0 {
			return nil, 0, errBadAnswer() // the answer broke off: worth another try
		}
		return nil, 0, err
	case status >= 200 && status < 300:
		return body, 0, nil
	}
	failure := vendorError(status, resp.Header, body, p.secret)
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return nil, time.Duration(failure.retryAfter) * time.Second, failure
	}
	if status >= 400 && status < 500 && status != http.StatusUnauthorized && status != http.StatusForbidden {
		return nil, -1, &vendorStatus{status: status, err: failure}
	}
	return nil, -1, failure
}

// readBody reads at most maxVendorBody+1 bytes into buf (a new one when nil),
// grown once from Content-Length.
func readBody(resp *http.Response, buf *bytes.Buffer) ([]byte, error) {
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if n := resp.ContentLength; n > 0 && n <= maxVendorBody {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, maxVendorBody+1))
	return buf.Bytes(), err
}

func (p *picaClient) observe(ctx context.Context, call vendorCall, status int, err error, d time.Duration, attempt int) {
	outcome := strconv.Itoa(status)
	if err != nil {
		outcome = "error"
	}
	p.metrics.vendorCall(call.endpoint, outcome, d)
	if c := p.logger.Check(zapcore.DebugLevel, "vendor call"); c != nil {
		fields := []zap.Field{
			zap.String("endpoint", call.endpoint),
			zap.String("method", call.method),
			zap.String("path", call.path),
			zap.Int("status", status),
			zap.Duration("duration", d),
			zap.Int("attempt", attempt),
			zap.String("request_id", requestIDOf(ctx)),
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
	var ae *apiError
	var vs *vendorStatus
	switch {
	case errors.As(err, &vs):
		return vs
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return errVendorTimeout()
	case errors.Is(err, context.Canceled):
		return errClientGone
	}
	return newError(http.StatusBadGateway, "vendor_unreachable", "the vendor's API could not be reached")
}

// unexpected is the envelope of a 4xx the caller of do did not interpret:
// the gateway's own request was refused, so the fault is the gateway's
// (a wrong `api`, say), and trying again will not help.
func unexpected(err error) error {
	var vs *vendorStatus
	if !errors.As(err, &vs) {
		return err
	}
	out := *vs.err
	out.Status = http.StatusBadGateway
	out.Message = "the vendor answered " + strconv.Itoa(vs.status) + " to the gateway (check `api`): " + vs.err.Message
	return notRetryable(&out)
}

func errVendorTimeout() *apiError {
	return newError(http.StatusGatewayTimeout, "vendor_timeout", "the vendor did not answer in time")
}

func errBadAnswer() *apiError {
	return newError(http.StatusBadGateway, "vendor_bad_response", "the vendor's answer could not be read")
}

// backoff is exponential with full jitter, or what the vendor asked for.
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

func innerError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// tokenPage asks for one page of the AuthKit token (POST /v1/authkit, or
// /v1/authkit/token for One); payload is the identity, as the SDKs send it.
func (p *picaClient) tokenPage(ctx context.Context, payload []byte, page, limit string, buf *bytes.Buffer) ([]byte, error) {
	body, err := p.do(ctx, vendorCall{
		endpoint: endpointToken, method: http.MethodPost, path: p.provider.tokenPath,
		query: url.Values{"limit": {limit}, "page": {page}}, body: payload, idempotent: true, buffer: buf,
	})
	return body, unexpected(err)
}

// whiteLabel reads the account's authkitWhitelist flag (Pica only).
func (p *picaClient) whiteLabel(ctx context.Context) (bool, error) {
	body, err := p.do(ctx, vendorCall{endpoint: endpointFlags, method: http.MethodGet, path: "/v1/users/flags", idempotent: true})
	if err != nil {
		return false, unexpected(err)
	}
	var flags struct {
		AuthkitWhitelist *bool `json:"authkitWhitelist"`
	}
	if json.Unmarshal(body, &flags) != nil || flags.AuthkitWhitelist == nil {
		return false, errBadAnswer()
	}
	return *flags.AuthkitWhitelist, nil
}

// vaultList lists vault connections matching query.
func (p *picaClient) vaultList(ctx context.Context, query url.Values) (vaultPage, error) {
	body, err := p.do(ctx, vendorCall{endpoint: endpointVaultList, method: http.MethodGet, path: "/v1/vault/connections", query: query, idempotent: true})
	if err != nil {
		return vaultPage{}, unexpected(err)
	}
	return decodeVaultPage(body)
}

// vaultGet reads one connection; found is false when the vendor has no
// such connection.
func (p *picaClient) vaultGet(ctx context.Context, id string) (conn vaultConnection, found bool, err error) {
	body, err := p.do(ctx, vendorCall{endpoint: endpointVaultGet, method: http.MethodGet, path: "/v1/vault/connections/" + id, idempotent: true})
	if isNotFound(err) {
		return conn, false, nil
	}
	if err != nil {
		return conn, false, unexpected(err)
	}
	conn, err = decodeConnection(body, id)
	return conn, err == nil, err
}

// vaultDelete deletes one connection; found is false when it was gone.
func (p *picaClient) vaultDelete(ctx context.Context, id string) (found bool, err error) {
	_, err = p.do(ctx, vendorCall{endpoint: endpointVaultDelete, method: http.MethodDelete, path: "/v1/vault/connections/" + id})
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, unexpected(err)
}

// connectors lists the connectors enabled in AuthKit, as the vendor wrote
// them, once they are checked to be a list.
func (p *picaClient) connectors(ctx context.Context, query url.Values) ([]byte, error) {
	body, err := p.do(ctx, vendorCall{endpoint: endpointConnectors, method: http.MethodGet, path: "/v1/available-connectors", query: query, idempotent: true})
	if err != nil {
		return nil, unexpected(err)
	}
	if _, err := parseList(body); err != nil {
		return nil, err
	}
	return body, nil
}

func isNotFound(err error) bool {
	var vs *vendorStatus
	return errors.As(err, &vs) && vs.status == http.StatusNotFound
}
