package caddyauthkit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	// tokenPageLimit is the page size the official SDK asks for.
	tokenPageLimit = "100"
	// maxParallelPages bounds the page calls one token request has in flight.
	maxParallelPages = 16
	// flagsTTL is how long the account's white-label flag is trusted.
	flagsTTL = 5 * time.Minute
)

// tokenSource builds AuthKit tokens: what the Node SDK's AuthKitToken.create
// returns, but with the flags call cached and overlapped with page 1 and every
// page requested in one round (the page count of the last token is remembered).
type tokenSource struct {
	pica *picaClient

	// pages is the page count Pica reported last; the next token asks for
	// that many pages at once.
	pages atomic.Int64

	flagsMu    sync.Mutex
	whiteLabel bool
	flagsUntil time.Time
	flagCalls  singleflight.Group

	// calls coalesces identical token requests of one identity.
	calls singleflight.Group
}

// authkitPage is what the merge needs of one page of POST /v1/authkit, as
// raw JSON: rows are copied, never decoded.
type authkitPage struct {
	rows      []byte // inside the rows array's brackets, trimmed
	total     []byte
	pages     int
	requestID []byte
}

func newTokenSource(pica *picaClient) *tokenSource {
	t := &tokenSource{pica: pica}
	t.pages.Store(1)
	return t
}

// token returns the token for id: all pages merged, or with page (and limit)
// given, that page as Pica sent it; both with isWhiteLabel.
func (t *tokenSource) token(ctx context.Context, id identity, page, limit string) ([]byte, error) {
	key := id.Type + "\x00" + id.ID + "\x00" + page + "\x00" + limit
	// The shared call must not die with the first caller's context.
	shared := context.WithoutCancel(ctx)
	ch := t.calls.DoChan(key, func() (any, error) {
		if page != "" {
			return t.onePage(shared, id, page, limit)
		}
		return t.allPages(shared, id)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, newError(499, "client_closed", "the client went away")
	}
}

func (t *tokenSource) onePage(ctx context.Context, id identity, page, limit string) ([]byte, error) {
	flags := t.whiteLabelAsync(ctx)
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(buf) // withWhiteLabel copies what it keeps
	body, err := t.fetchPage(ctx, tokenPayload(id), page, limit, buf)
	if err != nil {
		return nil, err
	}
	if _, err := parsePage(body); err != nil {
		return nil, err
	}
	return withWhiteLabel(body, <-flags), nil
}

func (t *tokenSource) allPages(ctx context.Context, id identity) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	flags := t.whiteLabelAsync(ctx)
	f := &pageFetcher{t: t, ctx: ctx, payload: tokenPayload(id), slots: make(chan struct{}, maxParallelPages)}
	defer func() {
		cancel() // stops pages fetched in vain when the count shrank
		go f.release()
	}()
	f.fetch(1, int(t.pages.Load()))

	first, err := f.result(1)
	if err != nil {
		return nil, err
	}
	firstPage, err := parsePage(first)
	if err != nil {
		return nil, err
	}
	pages := max(firstPage.pages, 1)
	t.pages.Store(int64(pages))
	if pages == 1 {
		return withWhiteLabel(first, <-flags), nil
	}
	f.fetch(len(f.pages)+1, pages)

	rows := [][]byte{firstPage.rows}
	var last authkitPage
	for n := 2; n <= pages; n++ {
		body, err := f.result(n)
		if err != nil {
			return nil, err
		}
		if last, err = parsePage(body); err != nil {
			return nil, err
		}
		rows = append(rows, last.rows)
	}
	return mergePages(rows, firstPage.total, last.requestID, <-flags), nil
}

// pageFetcher requests pages of one token concurrently, within a bound.
type pageFetcher struct {
	t       *tokenSource
	ctx     context.Context
	payload []byte // the same body for every page
	slots   chan struct{}
	pages   []*pendingPage
}

type pendingPage struct {
	done chan struct{}
	buf  *bytes.Buffer
	body []byte // aliases buf
	err  error
}

// pageBuffers hold pages while a token is merged; the merge copies the rows.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putPageBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 4<<20 { // a huge page is not worth keeping
		pageBuffers.Put(buf)
	}
}

// fetch starts pages from..to (1-based) that are not started yet.
func (f *pageFetcher) fetch(from, to int) {
	for n := from; n <= to; n++ {
		p := &pendingPage{done: make(chan struct{}), buf: pageBuffers.Get().(*bytes.Buffer)}
		f.pages = append(f.pages, p)
		go func(n int) {
			defer close(p.done)
			select {
			case f.slots <- struct{}{}:
				defer func() { <-f.slots }()
			case <-f.ctx.Done():
				p.err = f.ctx.Err()
				return
			}
			p.body, p.err = f.t.fetchPage(f.ctx, f.payload, strconv.Itoa(n), tokenPageLimit, p.buf)
		}(n)
	}
}

// release returns the page buffers once every fetch has ended.
func (f *pageFetcher) release() {
	for _, p := range f.pages {
		<-p.done
		putPageBuffer(p.buf)
	}
}

func (f *pageFetcher) result(n int) ([]byte, error) {
	p := f.pages[n-1]
	<-p.done
	return p.body, p.err
}

// tokenPayload is the body of POST /v1/authkit for id, as the SDK sends it.
func tokenPayload(id identity) []byte {
	body, _ := json.Marshal(map[string]string{"identity": id.ID, "identityType": id.Type})
	return body
}

func (t *tokenSource) fetchPage(ctx context.Context, payload []byte, page, limit string, buf *bytes.Buffer) ([]byte, error) {
	resp, err := t.pica.do(ctx, picaCall{
		Endpoint:   "authkit",
		Method:     http.MethodPost,
		Path:       "/v1/authkit",
		Query:      url.Values{"limit": {limit}, "page": {page}},
		Body:       payload,
		Idempotent: true,
		Buffer:     buf,
	})
	return resp, unexpected(err)
}

// whiteLabelAsync delivers the account's authkitWhitelist flag: from the
// cache, or from /v1/users/flags alongside the pages; false if that fails.
func (t *tokenSource) whiteLabelAsync(ctx context.Context) <-chan bool {
	ch := make(chan bool, 1)
	t.flagsMu.Lock()
	fresh, value := time.Now().Before(t.flagsUntil), t.whiteLabel
	t.flagsMu.Unlock()
	if fresh {
		ch <- value
		return ch
	}
	go func() {
		v, _, _ := t.flagCalls.Do("flags", func() (any, error) {
			body, err := t.pica.do(ctx, picaCall{Endpoint: "flags", Method: http.MethodGet, Path: "/v1/users/flags", Idempotent: true})
			if err != nil {
				return false, nil
			}
			var flags struct {
				AuthkitWhitelist bool `json:"authkitWhitelist"`
			}
			if json.Unmarshal(body, &flags) != nil {
				return false, nil
			}
			t.flagsMu.Lock()
			t.whiteLabel, t.flagsUntil = flags.AuthkitWhitelist, time.Now().Add(flagsTTL)
			t.flagsMu.Unlock()
			return flags.AuthkitWhitelist, nil
		})
		ch <- v.(bool)
	}()
	return ch
}

// parsePage finds what the merge needs without decoding the rows. It checks
// the structure a cut-off or foreign body breaks (an object, balanced
// brackets, terminated strings, a rows array); the tokens inside the rows
// are Pica's serializer's and are copied as they are.
func parsePage(body []byte) (authkitPage, error) {
	var p authkitPage
	fields, ok := objectFields(body)
	if !ok {
		return p, badAnswer()
	}
	switch rows := fields["rows"]; {
	case len(rows) >= 2 && rows[0] == '[':
		p.rows = bytes.TrimSpace(rows[1 : len(rows)-1])
	case rows != nil && string(rows) != "null":
		return p, badAnswer()
	}
	p.total, p.requestID = fields["total"], fields["requestId"]
	p.pages, _ = strconv.Atoi(string(fields["pages"]))
	return p, nil
}

// objectFields returns the raw values of a top-level JSON object's keys
// (those written without escapes), or false if body is not such an object.
func objectFields(body []byte) (map[string][]byte, bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	fields := make(map[string][]byte, 8)
	if i = skipSpace(body, i+1); i < len(body) && body[i] == '}' {
		return fields, skipSpace(body, i+1) == len(body)
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return nil, false
		}
		keyEnd := skipValue(body, i)
		if keyEnd < 0 {
			return nil, false
		}
		key := body[i+1 : keyEnd-1]
		if i = skipSpace(body, keyEnd); i >= len(body) || body[i] != ':' {
			return nil, false
		}
		i = skipSpace(body, i+1)
		end := skipValue(body, i)
		if end <= i {
			return nil, false
		}
		fields[string(key)] = body[i:end]
		if i = skipSpace(body, end); i >= len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return fields, skipSpace(body, i+1) == len(body)
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at i, or -1 when a
// string is not terminated or brackets do not balance.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return i // a scalar ends where its container does
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	if depth != 0 {
		return -1
	}
	return i
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
func mergePages(pages [][]byte, total, requestID []byte, whiteLabel bool) []byte {
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
	out = append(out, `,"isWhiteLabel":`...)
	out = strconv.AppendBool(out, whiteLabel)
	return append(out, '}')
}

func appendRaw(out, raw []byte) []byte {
	if len(raw) == 0 {
		return append(out, "null"...)
	}
	return append(out, raw...)
}
