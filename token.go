package caddyauthkit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// tokenPageLimit is the page size the official SDK asks for.
	tokenPageLimit = "100"
	// maxTokenPages is the most pages one token may have (10,000 connectors
	// at the SDK's page size); a vendor that reports more is answering wrong.
	maxTokenPages = 100
	// pageWorkers bounds the page calls one token has in flight.
	pageWorkers = 16
	// flagsTTL is how long the account's white-label flag is trusted.
	flagsTTL = 5 * time.Minute
)

// serveToken answers the token route: all pages merged as the Pica Node
// SDK does, or with page and limit in the query (the One widget always
// pages), that page as the vendor sent it.
func (a *AuthKit) serveToken(ctx context.Context, w http.ResponseWriter, r *http.Request, id identity) (err error) {
	defer a.audit(r, newAudit(tokenRoute, id), &err)
	a.renewGeneration(id) // the widget may connect another account
	var page, limit string
	q := r.URL.Query()
	if q.Has("page") || q.Has("limit") {
		if page, err = positiveParam(q.Get("page"), "page", "1", maxTokenPages); err != nil {
			return err
		}
		if limit, err = positiveParam(q.Get("limit"), "limit", tokenPageLimit, 1000); err != nil {
			return err
		}
	}
	body, err := a.tokens.token(ctx, id, page, limit)
	if err != nil {
		return err
	}
	a.writeJSON(w, r, tokenRoute, body)
	return nil
}

// tokenSource builds AuthKit tokens: what the Node SDK's AuthKitToken.create
// returns, but with the flags call cached and overlapped with page 1, and
// every page requested in one round (the page count of the last token is
// remembered).
type tokenSource struct {
	pica *picaClient

	// pages is the page count the vendor reported last, at most
	// maxTokenPages: the next token asks for that many pages at once.
	pages atomic.Int64

	// flags holds the account's white-label flag (Pica only).
	flags *cache[bool]

	// calls coalesces identical token requests of one identity; the work
	// stops when no caller waits for it anymore.
	calls flightGroup
}

func newTokenSource(pica *picaClient) *tokenSource {
	t := &tokenSource{pica: pica, flags: newCache[bool](1, flagsTTL)}
	t.pages.Store(1)
	return t
}

// token returns the token for id: all pages merged, or with page (and
// limit) given, that page as the vendor sent it.
func (t *tokenSource) token(ctx context.Context, id identity, page, limit string) ([]byte, error) {
	key := id.Type + "\x00" + id.ID + "\x00" + page + "\x00" + limit
	v, err := t.calls.do(ctx, key, func(ctx context.Context) (any, error) {
		// One deadline for the whole token, however many pages it has.
		ctx, cancel := context.WithTimeout(ctx, t.pica.timeout)
		defer cancel()
		if page != "" {
			return t.onePage(ctx, id, page, limit)
		}
		return t.allPages(ctx, id)
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

func (t *tokenSource) onePage(ctx context.Context, id identity, page, limit string) ([]byte, error) {
	flags := t.whiteLabelAsync(ctx)
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(buf) // what is returned is a copy
	body, err := t.pica.tokenPage(ctx, tokenPayload(id), page, limit, buf)
	if err != nil {
		return nil, err
	}
	if _, err := parseList(body); err != nil {
		return nil, err
	}
	if flags == nil {
		return bytes.Clone(body), nil
	}
	return withWhiteLabel(body, <-flags), nil
}

func (t *tokenSource) allPages(ctx context.Context, id identity) ([]byte, error) {
	flags := t.whiteLabelAsync(ctx)
	payload := tokenPayload(id)

	guess := int(t.pages.Load())
	results, err := t.fetchPages(ctx, payload, 1, guess)
	defer func() { releasePages(results) }()
	if err != nil {
		return nil, err
	}
	first, err := parsePage(results[0].body)
	if err != nil {
		return nil, err
	}
	pages := max(first.pages, 1)
	if pages > maxTokenPages {
		return nil, notRetryable(newError(http.StatusBadGateway, "vendor_bad_response",
			"the vendor reports "+strconv.Itoa(pages)+" token pages, more than the "+strconv.Itoa(maxTokenPages)+" a token may have"))
	}
	t.pages.Store(int64(pages))
	if pages == 1 {
		if flags == nil {
			return bytes.Clone(results[0].body), nil
		}
		return withWhiteLabel(results[0].body, <-flags), nil
	}
	if pages > guess {
		more, err := t.fetchPages(ctx, payload, guess+1, pages)
		results = append(results, more...)
		if err != nil {
			return nil, err
		}
	}

	rows := [][]byte{first.rows}
	var last authkitPage
	for _, result := range results[1:pages] {
		if last, err = parsePage(result.body); err != nil {
			return nil, err
		}
		rows = append(rows, last.rows)
	}
	var whiteLabel *bool
	if flags != nil {
		wl := <-flags
		whiteLabel = &wl
	}
	return mergePages(rows, first.total, last.requestID, whiteLabel), nil
}

// pageResult is one fetched page; body aliases buf.
type pageResult struct {
	buf  *bytes.Buffer
	body []byte
	err  error
}

// fetchPages fetches pages from..to with a fixed pool of workers and
// returns when every worker has ended. The first failure stops the rest and
// is returned.
func (t *tokenSource) fetchPages(ctx context.Context, payload []byte, from, to int) ([]pageResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]pageResult, to-from+1)
	var failure error
	var once sync.Once
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(pageWorkers, len(results)) {
		wg.Go(func() {
			for i := range next {
				r := &results[i]
				r.buf = pageBuffers.Get().(*bytes.Buffer)
				r.body, r.err = t.pica.tokenPage(ctx, payload, strconv.Itoa(from+i), tokenPageLimit, r.buf)
				if r.err != nil {
					once.Do(func() { failure = r.err; cancel() })
				}
			}
		})
	}
feed:
	for i := range results {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if failure == nil && ctx.Err() != nil {
		failure = errClientGone
	}
	return results, failure
}

// pageBuffers hold pages while a token is merged; the merge copies the rows.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putPageBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 4<<20 { // a huge page is not worth keeping
		pageBuffers.Put(buf)
	}
}

func releasePages(results []pageResult) {
	for _, r := range results {
		if r.buf != nil {
			putPageBuffer(r.buf)
		}
	}
}

// tokenPayload is the body of the token call for id, as the SDK sends it.
func tokenPayload(id identity) []byte {
	body, _ := json.Marshal(map[string]string{"identity": id.ID, "identityType": id.Type})
	return body
}

// whiteLabelAsync delivers the account's authkitWhitelist flag, from the
// cache or from /v1/users/flags alongside the pages; false if that fails.
// It is nil for a provider without the flag.
func (t *tokenSource) whiteLabelAsync(ctx context.Context) <-chan bool {
	if !t.pica.provider.whiteLabel {
		return nil
	}
	ch := make(chan bool, 1)
	if v, ok := t.flags.get("flags"); ok {
		ch <- v
		return ch
	}
	go func() {
		v, _ := t.flags.load(ctx, "flags", func(ctx context.Context) (bool, bool, error) {
			v, err := t.pica.whiteLabel(ctx)
			return v, err == nil, nil
		})
		ch <- v
	}()
	return ch
}

// authkitPage is what the merge needs of one token page, as raw JSON.
type authkitPage struct {
	rows      []byte // inside the rows array's brackets, trimmed
	total     []byte
	pages     int
	requestID []byte
}

// parsePage checks a page is a token page and finds what the merge needs
// without decoding the rows.
func parsePage(body []byte) (authkitPage, error) {
	var p authkitPage
	fields, err := parseList(body)
	if err != nil {
		return p, err
	}
	rows := fields["rows"]
	p.rows = bytes.TrimSpace(rows[1 : len(rows)-1])
	p.total, p.requestID = fields["total"], fields["requestId"]
	p.pages, _ = strconv.Atoi(string(fields["pages"]))
	return p, nil
}

// withWhiteLabel appends isWhiteLabel to a JSON object, as the SDK's
// {...response, isWhiteLabel} does.
func withWhiteLabel(object []byte, whiteLabel bool) []byte {
	object = bytes.TrimSpace(object)
	out := make([]byte, 0, len(object)+24)
	out = append(out, object[:len(object)-1]...)
	if len(bytes.TrimSpace(object[1:len(object)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"isWhiteLabel":`...)
	out = strconv.AppendBool(out, whiteLabel)
	return append(out, '}')
}

// mergePages writes the SDK's merged token with the rows as they arrived.
// whiteLabel is nil for a provider without the flag.
func mergePages(pages [][]byte, total, requestID []byte, whiteLabel *bool) []byte {
	size := 128 + len(total) + len(requestID)
	for _, rows := range pages {
		size += len(rows) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, `{"rows":[`...)
	first := true
	for _, rows := range pages {
		if len(rows) == 0 {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, rows...)
	}
	out = append(out, `],"page":1,"pages":1,"total":`...)
	out = appendRaw(out, total)
	out = append(out, `,"requestId":`...)
	out = appendRaw(out, requestID)
	if whiteLabel != nil {
		out = append(out, `,"isWhiteLabel":`...)
		out = strconv.AppendBool(out, *whiteLabel)
	}
	return append(out, '}')
}

func appendRaw(out, raw []byte) []byte {
	if len(raw) == 0 {
		return append(out, "null"...)
	}
	return append(out, raw...)
}
