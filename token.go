package caddyauthkit

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyauthkit/caddyauthkit/internal/cache"
	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
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
func (a *AuthKit) serveToken(w *recorder, rq *request) error {
	a.owners.renew(rq.caller) // the widget may connect another account
	var page, limit string
	q := rq.r.URL.Query()
	if q.Has("page") || q.Has("limit") {
		var err error
		if page, err = positiveParam(q.Get("page"), "page", "1", maxTokenPages); err != nil {
			return err
		}
		if limit, err = positiveParam(q.Get("limit"), "limit", tokenPageLimit, 1000); err != nil {
			return err
		}
	}
	body, err := a.tokens.token(rq.ctx, rq.caller, page, limit)
	if err != nil {
		return err
	}
	writeJSON(w, body)
	return nil
}

// tokenSource builds AuthKit tokens: what the Node SDK's AuthKitToken.create
// returns, but with the flags call cached and overlapped with page 1, and
// every page requested in one round (the page count of the last token is
// remembered).
type tokenSource struct {
	vendor *vendor.Client

	// pages is the page count the vendor reported last, at most
	// maxTokenPages: the next token asks for that many pages at once.
	pages atomic.Int64

	// flags holds the account's white-label flag (Pica only).
	flags *cache.Cache[bool]

	// calls coalesces identical token requests of one identity; the work
	// stops when no caller waits for it anymore.
	calls cache.Group
}

func newTokenSource(client *vendor.Client) *tokenSource {
	t := &tokenSource{vendor: client, flags: cache.New[bool](1, flagsTTL)}
	t.pages.Store(1)
	return t
}

// token returns the token for id: all pages merged, or with page (and
// limit) given, that page as the vendor sent it. ctx is a work context:
// the pages are fetched on workers.
func (t *tokenSource) token(ctx context.Context, id identity, page, limit string) ([]byte, error) {
	key := id.Type + "\x00" + id.ID + "\x00" + page + "\x00" + limit
	v, err := t.calls.Do(ctx, key, func(ctx context.Context) (any, error) {
		// One deadline for the whole token, however many pages it has.
		ctx, cancel := context.WithTimeout(ctx, t.vendor.Timeout())
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
	body, _, err := t.vendor.TokenPage(ctx, tokenPayload(id), page, limit, buf)
	if err != nil {
		return nil, err
	}
	return withFlag(body, flags), nil
}

func (t *tokenSource) allPages(ctx context.Context, id identity) ([]byte, error) {
	flags := t.whiteLabelAsync(ctx)
	payload := tokenPayload(id)

	guess := int(t.pages.Load())
	results, failedPage, err := t.fetchPages(ctx, payload, 1, guess)
	if err != nil && failedPage > 1 && ctx.Err() == nil {
		// The remembered count is a guess: the account may have fewer
		// pages now, and a page it no longer has may fail. Ask again as
		// the first time, page 1 first.
		releasePages(results)
		guess = 1
		results, _, err = t.fetchPages(ctx, payload, 1, guess)
	}
	defer func() { releasePages(results) }()
	if err != nil {
		return nil, err
	}
	first := results[0].page
	pages := max(first.Pages, 1)
	if pages > maxTokenPages {
		return nil, vendor.BadAnswer("it reports " + strconv.Itoa(pages) + " token pages, more than the " + strconv.Itoa(maxTokenPages) + " a token may have")
	}
	t.pages.Store(int64(pages))
	if pages == 1 {
		return withFlag(results[0].body, flags), nil
	}
	if pages > guess {
		more, _, err := t.fetchPages(ctx, payload, guess+1, pages)
		results = append(results, more...)
		if err != nil {
			return nil, err
		}
	}
	rows := make([][]byte, pages)
	for i, result := range results[:pages] {
		rows[i] = result.page.Rows
	}
	var whiteLabel *bool
	if flags != nil {
		wl := <-flags
		whiteLabel = &wl
	}
	return vendor.MergeTokenPages(rows, first.Total, results[pages-1].page.RequestID, whiteLabel), nil
}

// withFlag is a copy of the one page of a token, with the white-label flag
// once it has come when the provider has one (flags is not nil).
func withFlag(page []byte, flags <-chan bool) []byte {
	if flags == nil {
		return bytes.Clone(page)
	}
	return vendor.WithWhiteLabel(page, <-flags)
}

// pageResult is one fetched page; body and page alias buf.
type pageResult struct {
	buf  *bytes.Buffer
	body []byte
	page vendor.TokenPage
	err  error
}

// fetchPages fetches pages from..to with a fixed pool of workers and
// returns when every worker has ended. The first failure stops the rest and
// is returned, with its page. The workers touch only ctx (a work context)
// and their own results.
func (t *tokenSource) fetchPages(ctx context.Context, payload []byte, from, to int) ([]pageResult, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]pageResult, to-from+1)
	var failure error
	failedPage := 0
	var once sync.Once
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(pageWorkers, len(results)) {
		wg.Go(func() {
			for i := range next {
				r := &results[i]
				r.buf = pageBuffers.Get().(*bytes.Buffer)
				r.body, r.page, r.err = t.vendor.TokenPage(ctx, payload, strconv.Itoa(from+i), tokenPageLimit, r.buf)
				if r.err != nil {
					once.Do(func() { failure, failedPage = r.err, from+i; cancel() })
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
		failure = ctx.Err() // the caller left, or the token's budget ran out
	}
	return results, failedPage, failure
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
// It is nil for a provider without the flag. The goroutine touches only
// ctx, a work context.
func (t *tokenSource) whiteLabelAsync(ctx context.Context) <-chan bool {
	if !t.vendor.Provider().WhiteLabel {
		return nil
	}
	ch := make(chan bool, 1)
	if v, ok := t.flags.Get("flags"); ok {
		ch <- v
		return ch
	}
	go func() {
		v, _ := t.flags.Load(ctx, "flags", func(ctx context.Context) (bool, bool, error) {
			v, err := t.vendor.WhiteLabel(ctx)
			return v, err == nil, nil
		})
		ch <- v
	}()
	return ch
}
