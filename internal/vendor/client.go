package vendor

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
)

// The vendor's endpoints, by the one name the metrics, the logs and the
// traces use (the sandbox names its faults alike).
const (
	endpointToken       = "token"
	endpointFlags       = "flags"
	endpointVaultList   = "vault_list"
	endpointVaultGet    = "vault_get"
	endpointVaultDelete = "vault_delete"
	endpointConnectors  = "connectors"
	EndpointPassthrough = "passthrough"
)

const (
	// maxBody caps what is read of one answer.
	maxBody = 32 << 20
	// maxAttempts is how often an idempotent call is tried.
	maxAttempts = 3
	// maxRetryWait is the longest wait the vendor may ask for that the
	// client sits out itself; a longer one goes to the caller at once.
	maxRetryWait = time.Second
)

// Client is the one road to the vendor's API. It never follows a redirect
// (the secret would go with it), bounds every call by a time budget, and
// holds a slot of its Limiter while a call is in flight.
type Client struct {
	base     *url.URL
	provider *Provider
	secret   string
	http     *http.Client
	timeout  time.Duration
	limiter  *Limiter
	hooks    Hooks
}

// Config is what a Client is made of.
type Config struct {
	// API is the base URL, scheme://host[:port].
	API      *url.URL
	Provider *Provider
	Secret   string
	// Transport carries the calls; the gateway's is Caddy's.
	Transport http.RoundTripper
	// Timeout is the budget of one call, retries included.
	Timeout time.Duration
	// Limiter bounds the calls in flight; shared with passthrough.
	Limiter *Limiter
	Hooks   Hooks
}

// Hooks let the gateway watch the calls, for its metrics, logs and traces.
// Nil hooks are skipped.
type Hooks struct {
	// Call is called as each attempt starts, with the request about to
	// leave (it may add headers, such as a trace context); done gets the
	// attempt's status (0 when no answer came) and error.
	Call func(req *http.Request, endpoint string, attempt int) (done func(status int, err error))
	// Retry is called before an attempt after the first.
	Retry func(endpoint string)
}

// New makes a Client.
func New(cfg Config) *Client {
	return &Client{
		base:     cfg.API,
		provider: cfg.Provider,
		secret:   cfg.Secret,
		http: &http.Client{
			Transport:     cfg.Transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: cfg.Timeout,
		limiter: cfg.Limiter,
		hooks:   cfg.Hooks,
	}
}

// Provider is the client's dialect.
func (c *Client) Provider() *Provider { return c.provider }

// Timeout is the budget of one call.
func (c *Client) Timeout() time.Duration { return c.timeout }

// call is one request to the vendor.
type call struct {
	endpoint   string
	method     string
	path       string
	query      url.Values
	body       []byte
	idempotent bool
	// notFound: a 404 means the item is not there (errNotFound), not a
	// misdirected call.
	notFound bool
	// buffer, when set, receives the answer, which then aliases it.
	buffer *bytes.Buffer
}

// errNotFound is a 404 to a call that asked to hear it.
var errNotFound = errors.New("not found")

// do makes cl within the time budget and returns the body of a 2xx answer.
// Idempotent calls are retried on network errors, 429, 502, 503 and 504
// with jittered backoff that honours Retry-After. Errors are an *Error, the
// context's error when the caller left, or errNotFound.
func (c *Client) do(ctx context.Context, cl call) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	release, err := c.limiter.Acquire()
	if err != nil {
		return nil, err
	}
	defer release()

	var last error
	for attempt := 1; ; attempt++ {
		body, wait, err := c.attempt(ctx, cl, attempt)
		if err == nil {
			return body, nil
		}
		last = err
		if !cl.idempotent || wait < 0 || wait > maxRetryWait || attempt == maxAttempts {
			break
		}
		if c.hooks.Retry != nil {
			c.hooks.Retry(cl.endpoint)
		}
		if sleepContext(ctx, backoff(attempt, wait)) != nil {
			break
		}
	}
	return nil, explain(ctx, last)
}

// attempt makes one request. wait is negative when the failure is final,
// else the delay the vendor asked for (0 when it did not say).
func (c *Client) attempt(ctx context.Context, cl call, attempt int) (body []byte, wait time.Duration, err error) {
	u := *c.base
	u.Path += cl.path
	u.RawQuery = cl.query.Encode()
	var reqBody io.Reader
	if cl.body != nil {
		reqBody = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), reqBody)
	if err != nil {
		return nil, -1, err
	}
	req.Header.Set(c.provider.SecretHeader, c.secret)
	req.Header.Set("Accept", "application/json")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var done func(int, error)
	if c.hooks.Call != nil {
		done = c.hooks.Call(req, cl.endpoint, attempt)
	}

	resp, err := c.http.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		body, err = readBody(resp, cl.buffer)
		resp.Body.Close()
	}
	if done != nil {
		done(status, err)
	}

	switch {
	case err != nil && ctx.Err() != nil:
		return nil, -1, err // cancelled or out of time: final
	case err == nil && len(body) > maxBody:
		return nil, -1, BadAnswer("it is larger than 32 MiB") // it would be again
	case err != nil && status != 0:
		return nil, 0, BadAnswer("it broke off") // worth another try
	case err != nil:
		return nil, 0, err
	case status >= 200 && status < 300:
		return body, 0, nil
	case status == http.StatusNotFound && cl.notFound:
		return nil, -1, errNotFound
	}
	failure := Failure(status, resp.Header, body, c.secret)
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return nil, time.Duration(failure.RetryAfter) * time.Second, failure
	}
	if failure.Code == "vendor_refused" {
		// The gateway's own call was refused: the fault is the gateway's
		// (a wrong `api`, say), and trying again will not help.
		failure.Status = http.StatusBadGateway
		failure.Message = "the vendor refused the gateway's own call (" + strconv.Itoa(status) + " " + http.StatusText(status) + "); check `api`"
	}
	return nil, -1, failure
}

// readBody reads at most maxBody+1 bytes into buf (a new one when nil),
// grown once from Content-Length.
func readBody(resp *http.Response, buf *bytes.Buffer) ([]byte, error) {
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if n := resp.ContentLength; n > 0 && n <= maxBody {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBody+1))
	return buf.Bytes(), err
}

// explain turns the last failure of a call into what the caller is told.
func explain(ctx context.Context, err error) error {
	var e *Error
	switch {
	case errors.As(err, &e), errors.Is(err, errNotFound):
		return err
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return errTimeout(err)
	case errors.Is(err, context.Canceled):
		return context.Canceled
	}
	return errUnreachable(err)
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

// TokenPage asks for one page of the AuthKit token (POST /v1/authkit, or
// /v1/authkit/token for One); payload is the identity, as the SDKs send it.
// It returns the page as the vendor wrote it, checked, and what a merge
// needs of it. buf, when set, holds the answer.
func (c *Client) TokenPage(ctx context.Context, payload []byte, page, limit string, buf *bytes.Buffer) ([]byte, TokenPage, error) {
	body, err := c.do(ctx, call{
		endpoint: endpointToken, method: http.MethodPost, path: c.provider.TokenPath,
		query: url.Values{"limit": {limit}, "page": {page}}, body: payload, idempotent: true, buffer: buf,
	})
	if err != nil {
		return nil, TokenPage{}, err
	}
	parsed, err := parseTokenPage(body)
	return body, parsed, err
}

// WhiteLabel reads the account's authkitWhitelist flag (Pica only).
func (c *Client) WhiteLabel(ctx context.Context) (bool, error) {
	body, err := c.do(ctx, call{endpoint: endpointFlags, method: http.MethodGet, path: "/v1/users/flags", idempotent: true})
	if err != nil {
		return false, err
	}
	var flags struct {
		AuthkitWhitelist *bool `json:"authkitWhitelist"`
	}
	if json.Unmarshal(body, &flags) != nil || flags.AuthkitWhitelist == nil {
		return false, BadAnswer("no authkitWhitelist flag")
	}
	return *flags.AuthkitWhitelist, nil
}

// VaultList lists the vault connections matching query.
func (c *Client) VaultList(ctx context.Context, query url.Values) (VaultPage, error) {
	body, err := c.do(ctx, call{endpoint: endpointVaultList, method: http.MethodGet, path: "/v1/vault/connections", query: query, idempotent: true})
	if err != nil {
		return VaultPage{}, err
	}
	return decodeVaultPage(body)
}

// VaultGet reads one connection; found is false when the vendor has no
// such connection.
func (c *Client) VaultGet(ctx context.Context, id string) (conn Connection, found bool, err error) {
	body, err := c.do(ctx, call{endpoint: endpointVaultGet, method: http.MethodGet, path: "/v1/vault/connections/" + id, idempotent: true, notFound: true})
	if errors.Is(err, errNotFound) {
		return conn, false, nil
	}
	if err != nil {
		return conn, false, err
	}
	conn, err = decodeConnection(body, id)
	return conn, err == nil, err
}

// VaultDelete deletes one connection; found is false when it was gone.
// It is never retried: the first attempt may have deleted it.
func (c *Client) VaultDelete(ctx context.Context, id string) (found bool, err error) {
	_, err = c.do(ctx, call{endpoint: endpointVaultDelete, method: http.MethodDelete, path: "/v1/vault/connections/" + id, notFound: true})
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Connectors lists the connectors enabled in AuthKit, as the vendor wrote
// them, once they are checked to be a list.
func (c *Client) Connectors(ctx context.Context, query url.Values) ([]byte, error) {
	body, err := c.do(ctx, call{endpoint: endpointConnectors, method: http.MethodGet, path: "/v1/available-connectors", query: query, idempotent: true})
	if err != nil {
		return nil, err
	}
	if _, err := parseList(body); err != nil {
		return nil, err
	}
	return body, nil
}
