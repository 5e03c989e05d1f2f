package vendor

import (
	"bytes"
	"strconv"
)

// TokenPage is what a merge needs of one page of the AuthKit token, as
// raw JSON.
type TokenPage struct {
	Rows      []byte // inside the rows array's brackets, trimmed
	Total     []byte
	Pages     int
	RequestID []byte
}

// parseTokenPage checks a page is a token page and finds what the merge
// needs without decoding the rows.
func parseTokenPage(body []byte) (TokenPage, error) {
	var p TokenPage
	fields, err := parseList(body)
	if err != nil {
		return p, err
	}
	rows := fields["rows"]
	p.Rows = bytes.TrimSpace(rows[1 : len(rows)-1])
	p.Total, p.RequestID = fields["total"], fields["requestId"]
	// pages: a whole number as written, the largest int when too large for
	// one (the merge refuses that many); anything else, 2.0 included, is 0.
	// (Atoi alone reads 100000000000000000000.0 as the largest int: it
	// meets the overflow before the fraction.)
	if pages := fields["pages"]; !bytes.ContainsAny(pages, ".eE") {
		p.Pages, _ = strconv.Atoi(string(pages))
	}
	return p, nil
}

// WithWhiteLabel appends isWhiteLabel to a JSON object, as the Node SDK's
// {...response, isWhiteLabel} does.
func WithWhiteLabel(object []byte, whiteLabel bool) []byte {
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

// MergeTokenPages writes the token the Node SDK's AuthKitToken.create
// returns for several pages: every page's rows in order, as they arrived,
// with page 1 of 1, the first page's total and the last page's requestId.
// whiteLabel is nil for a provider without the flag.
func MergeTokenPages(pages [][]byte, total, requestID []byte, whiteLabel *bool) []byte {
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
