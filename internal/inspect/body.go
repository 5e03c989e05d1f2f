package inspect

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// MaxInspectedBody is the largest passthrough body read to check the
// connection key it names; a larger one that needs checking is refused
// rather than sent unchecked.
const MaxInspectedBody = 1 << 20

// PinBody makes sure a passthrough body that could name a connection key
// names only key: a vendor endpoint reading connectionKey from the body must
// not act on another connection than the headers proved. It checks every
// encoding a vendor could read a key from:
//
//   - JSON, judged by content (anything that starts like JSON after
//     whitespace and a UTF-8 BOM, whatever its Content-Type) or by a JSON
//     Content-Type (any that names json: NDJSON and JSON lines too);
//   - forms (application/x-www-form-urlencoded);
//   - multipart bodies: form-data fields, and parts that are JSON or forms.
//
// Such a body is read whole, up to MaxInspectedBody, and r is given the
// bytes that were checked. What cannot be checked is refused: compressed
// bodies and parts, JSON or forms in UTF-16 or UTF-32 (with or without a
// byte order mark) or another charset, transfer-encoded parts, malformed
// multipart. Other bodies keep streaming.
func PinBody(r *http.Request, key string) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if encoded(r.Header) {
		return refuse(http.StatusUnsupportedMediaType, "body_encoding_unsupported", "compressed request bodies are not accepted on passthrough")
	}
	if len(r.Header.Values("Content-Type")) > 1 {
		return errTwoHeaders("Content-Type")
	}
	head, err := peek(r.Body)
	if err != nil {
		return err
	}
	kind, err := kindOf(r.Header.Get("Content-Type"), head)
	if err != nil {
		return err
	}
	if kind == nil {
		r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		return nil
	}
	rest, err := io.ReadAll(io.LimitReader(r.Body, int64(MaxInspectedBody-len(head)+1)))
	if err != nil {
		return errBodyUnreadable()
	}
	whole := append(head, rest...)
	if len(whole) > MaxInspectedBody {
		return refuse(http.StatusRequestEntityTooLarge, "body_too_large", "a JSON, form or multipart passthrough body is checked, and must not exceed "+strconv.Itoa(MaxInspectedBody)+" bytes")
	}
	if err := kind(whole, key, 0); err != nil {
		return err
	}
	r.Body = readCloser{bytes.NewReader(whole), r.Body}
	r.ContentLength = int64(len(whole))
	r.TransferEncoding = nil
	return nil
}

// A checker checks a whole body (or part) for connection keys other than
// key; depth counts the multipart bodies it is inside.
type checker func(b []byte, key string, depth int) error

// kindOf says how a body (or a part) of content type contentType, starting
// with head, is checked; nil when it needs no check.
func kindOf(contentType string, head []byte) (checker, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil && contentType != "" {
		mediaType = strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	}
	// application/json, +json, and the JSON streams (x-ndjson, jsonl,
	// json-seq), whose first value may be a scalar; "json" anywhere in the
	// media type, as a server testing the header for it reads it.
	jsonType := strings.Contains(mediaType, "json")
	form := mediaType == "application/x-www-form-urlencoded"
	multipartType := strings.HasPrefix(mediaType, "multipart/")
	charset := strings.ToLower(params["charset"])
	first, hasContent := firstContent(head)
	switch {
	case wideJSON(head) || (jsonType || form) && bytes.IndexByte(head[:min(4, len(head))], 0) >= 0:
		return nil, errNotUTF8()
	case (jsonType || form || multipartType) && charset != "" && charset != "utf-8" && charset != "us-ascii":
		return nil, errNotUTF8()
	case multipartType:
		if err != nil || params["boundary"] == "" {
			return nil, refuse(http.StatusBadRequest, "body_invalid", "the multipart body has no valid boundary")
		}
		boundary := params["boundary"]
		return func(b []byte, key string, depth int) error { return checkMultipart(b, boundary, key, depth) }, nil
	case form && (first == '{' || first == '['):
		// Said to be a form, but JSON to a server that reads JSON by
		// content: checked as both.
		return func(b []byte, key string, _ int) error {
			if err := checkForm(b, key); err != nil {
				return err
			}
			return checkJSON(contentStart(b), key, 0)
		}, nil
	case form:
		return func(b []byte, key string, _ int) error { return checkForm(b, key) }, nil
	case jsonType && hasContent, first == '{', first == '[':
		return func(b []byte, key string, _ int) error { return checkJSON(contentStart(b), key, 0) }, nil
	}
	return nil, nil
}

// encoded: a Content-Encoding other than identity, which this check cannot
// see through.
func encoded(h http.Header) bool {
	for _, coding := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(coding, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}

func errOtherKey() *Refusal {
	return refuse(http.StatusForbidden, "connection_not_owned", "the body names another connection than the connection key header")
}

func errAmbiguous() *Refusal {
	return refuse(http.StatusBadRequest, "body_ambiguous", "the body names a connection key more than once")
}

func errTwoHeaders(name string) *Refusal {
	return refuse(http.StatusBadRequest, "body_ambiguous", "the request body or one of its parts has more than one "+name+" header")
}

func errNotUTF8() *Refusal {
	return refuse(http.StatusUnsupportedMediaType, "body_encoding_unsupported", "JSON, form and multipart request bodies must be UTF-8")
}

func errBodyUnreadable() *Refusal {
	return refuse(http.StatusBadRequest, "body_invalid", "the request body could not be read")
}

// readCloser reads from one reader and closes the client's body.
type readCloser struct {
	io.Reader
	io.Closer
}
