package inspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// MaxInspectedBody is the largest passthrough body read to check the
// connection key it names; a larger one that needs checking is refused
// rather than sent unchecked.
const MaxInspectedBody = 1 << 20

// maxNestedJSON bounds how deep JSON carried inside JSON strings is checked.
const maxNestedJSON = 3

// maxNestedMultipart bounds how deep multipart bodies inside parts are read.
const maxNestedMultipart = 2

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
	// json-seq), whose first value may be a scalar.
	jsonType := strings.Contains(mediaType[strings.IndexByte(mediaType, '/')+1:], "json")
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

// peek reads up to the first byte that is not whitespace or a UTF-8 BOM,
// and at least 4 bytes, or to the end. When one of the first 4 bytes is
// zero (UTF-16 or UTF-32, whose whitespace is wide too), it reads on to
// the first unit that is not whitespace in each width and byte order, so
// what is judged never depends on how the body arrived. It may read more:
// head is judged again only once it has doubled, so a body trickling in
// byte by byte costs linear time, not quadratic.
func peek(body io.Reader) ([]byte, error) {
	head := make([]byte, 0, 512)
	judgeAt := 1
	for {
		if len(head) == cap(head) {
			if len(head) >= MaxInspectedBody {
				return nil, refuse(http.StatusRequestEntityTooLarge, "body_too_large", "the request body starts with too much whitespace")
			}
			head = append(head, make([]byte, len(head))...)[:len(head)]
		}
		n, err := body.Read(head[len(head):cap(head)])
		head = head[:len(head)+n]
		if len(head) >= judgeAt {
			if _, ok := firstContent(head); ok && len(head) >= 4 && (bytes.IndexByte(head[:4], 0) < 0 || wideSettled(head)) {
				return head, nil
			}
			judgeAt = 2 * len(head)
		}
		if errors.Is(err, io.EOF) {
			return head, nil
		}
		if err != nil {
			return nil, errBodyUnreadable()
		}
	}
}

// utf8BOM may open a UTF-8 body; parsers skip it.
const utf8BOM = "\xef\xbb\xbf"

// contentStart is b after a leading UTF-8 BOM and whitespace.
func contentStart(b []byte) []byte {
	return bytes.TrimLeft(bytes.TrimPrefix(b, []byte(utf8BOM)), " \t\r\n")
}

// firstContent is the first byte of b's content, if it has arrived.
func firstContent(b []byte) (byte, bool) {
	if len(b) > 0 && len(b) < len(utf8BOM) && bytes.HasPrefix([]byte(utf8BOM), b) {
		return 0, false // a BOM still arriving
	}
	if rest := contentStart(b); len(rest) > 0 {
		return rest[0], true
	}
	return 0, false
}

// wideJSON: head is JSON in UTF-16 or UTF-32, with or without a byte order
// mark. Some parsers decode it; the checks here read UTF-8 only.
func wideJSON(head []byte) bool {
	for _, bom := range []string{"\xfe\xff", "\xff\xfe", "\x00\x00\xfe\xff"} {
		if bytes.HasPrefix(head, []byte(bom)) {
			return true
		}
	}
	if len(head) < 2 || bytes.IndexByte(head[:min(4, len(head))], 0) < 0 {
		return false
	}
	for _, width := range []int{2, 4} {
		for _, bigEndian := range []bool{true, false} {
			switch unit, _ := firstWide(head, width, bigEndian); unit {
			case '{', '[', '"':
				return true
			}
		}
	}
	return false
}

// wideSettled: head holds a unit that is not whitespace in each width and
// byte order, so wideJSON's answer will not change with more of the body.
func wideSettled(head []byte) bool {
	for _, width := range []int{2, 4} {
		for _, bigEndian := range []bool{true, false} {
			if _, found := firstWide(head, width, bigEndian); !found {
				return false
			}
		}
	}
	return true
}

// firstWide is the first code unit of head that is not whitespace, read as
// width-byte units in the given byte order, and whether there is one.
func firstWide(head []byte, width int, bigEndian bool) (rune, bool) {
	for i := 0; i+width <= len(head); i += width {
		var unit rune
		for j := range width {
			shift := 8 * j
			if bigEndian {
				shift = 8 * (width - 1 - j)
			}
			unit |= rune(head[i+j]) << shift
		}
		switch unit {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return unit, true
	}
	return 0, false
}

// checkJSON walks every JSON value in b (a stream of them, as NDJSON) and
// checks each member named like connectionKey, at any depth: its value must
// be key, and it may appear once per object, since parsers differ on which
// duplicate they keep. JSON carried in strings is checked too. A body that
// starts like JSON but is not JSON is refused: a lenient parser behind the
// vendor might still read a key from it.
func checkJSON(b []byte, key string, depth int) error {
	type frame struct{ object, wantKey, named bool }
	var (
		stack     []*frame
		checkNext bool
		ambiguous bool
	)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	valueDone := func() {
		checkNext = false
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) && len(stack) == 0 {
			break
		}
		if err != nil {
			return refuse(http.StatusBadRequest, "body_invalid", "the request body is said or looks to be JSON but is not JSON")
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			top := stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			name, _ := tok.(string)
			top.wantKey = false
			if isConnectionKeyName(name) {
				ambiguous = ambiguous || top.named
				top.named, checkNext = true, true
			}
			continue
		}
		switch v := tok.(type) {
		case json.Delim:
			if checkNext {
				return errOtherKey()
			}
			if v == '{' || v == '[' {
				stack = append(stack, &frame{object: v == '{', wantKey: v == '{'})
				continue
			}
			stack = stack[:len(stack)-1] // ']'
		case string:
			if checkNext && v != key {
				return errOtherKey()
			}
			if inner := strings.TrimSpace(v); !checkNext && depth < maxNestedJSON && (strings.HasPrefix(inner, "{") || strings.HasPrefix(inner, "[")) {
				var r *Refusal
				if err := checkJSON([]byte(inner), key, depth+1); errors.As(err, &r) && r.Code != "body_invalid" {
					return err
				}
			}
		default:
			if checkNext {
				return errOtherKey()
			}
		}
		valueDone()
	}
	if ambiguous {
		return errAmbiguous()
	}
	return nil
}

// checkForm checks a form body's fields named like connectionKey, also as
// the last part of a nested name (input[connectionKey], input.connectionKey).
func checkForm(b []byte, key string) error {
	values, err := url.ParseQuery(string(b))
	if err != nil {
		return refuse(http.StatusBadRequest, "body_invalid", "the form body is malformed")
	}
	for name, vs := range values {
		if !isKeyField(name) {
			continue
		}
		for _, v := range vs {
			if v != key {
				return errOtherKey()
			}
		}
		if len(vs) > 1 {
			return errAmbiguous()
		}
	}
	return nil
}

// checkMultipart checks every part of a multipart body: a form-data field
// named like connectionKey must hold key, once; a part that is JSON, a form
// or multipart itself is checked as such. A body with anything before its
// first boundary or after its last, a part transfer- or content-encoded, or
// one in another charset than UTF-8 is refused: parsers differ on them.
func checkMultipart(b []byte, boundary, key string, depth int) error {
	malformed := refuse(http.StatusBadRequest, "body_invalid", "the multipart body is malformed")
	if depth >= maxNestedMultipart {
		return refuse(http.StatusUnsupportedMediaType, "body_encoding_unsupported", "multipart bodies nested this deep are not accepted on passthrough")
	}
	delimiter := "--" + boundary
	trimmed := bytes.TrimRight(b, "\r\n")
	if !bytes.HasPrefix(b, []byte(delimiter)) || !bytes.HasSuffix(trimmed, []byte(delimiter+"--")) || len(b)-len(trimmed) > 2 {
		return malformed
	}
	reader := multipart.NewReader(bytes.NewReader(b), boundary)
	named := false
	for {
		part, err := reader.NextRawPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return malformed
		}
		content, err := io.ReadAll(part)
		if err != nil {
			return malformed
		}
		for _, name := range []string{"Content-Disposition", "Content-Type"} {
			if len(part.Header.Values(name)) > 1 {
				return errTwoHeaders(name)
			}
		}
		if err := checkPart(part.Header, content, key, depth); err != nil {
			return err
		}
		disposition := part.Header.Get("Content-Disposition")
		_, params, err := mime.ParseMediaType(disposition)
		if err != nil && disposition != "" {
			return malformed
		}
		// Parsers differ on name and name*= (RFC 2231) side by side, and
		// on a name*= that Go does not decode: one name, read as Go reads
		// it, or the part is refused.
		switch count, extended := nameParams(disposition); {
		case count > 1:
			return refuse(http.StatusBadRequest, "body_ambiguous", "a multipart part names its field more than once")
		case extended && params["name"] == "":
			return malformed
		}
		if isKeyField(params["name"]) {
			if string(content) != key {
				return errOtherKey()
			}
			if named {
				return errAmbiguous()
			}
			named = true
		}
	}
}

// checkPart checks one part's content as a body of its own.
func checkPart(h textproto.MIMEHeader, content []byte, key string, depth int) error {
	if cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte != "" && cte != "7bit" && cte != "8bit" && cte != "binary" {
		return refuse(http.StatusUnsupportedMediaType, "body_encoding_unsupported", "transfer-encoded multipart parts are not accepted on passthrough")
	}
	if encoded(http.Header(h)) {
		return refuse(http.StatusUnsupportedMediaType, "body_encoding_unsupported", "compressed multipart parts are not accepted on passthrough")
	}
	kind, err := kindOf(h.Get("Content-Type"), content)
	if err != nil || kind == nil {
		return err
	}
	return kind(content, key, depth+1)
}

// nameParams counts the parameters of a Content-Disposition that name a
// field (name, name*=, RFC 2231 continuations name*0...), read naively as
// some servers do, and says whether one is extended (name*...).
func nameParams(disposition string) (count int, extended bool) {
	for param := range strings.SplitSeq(disposition, ";") {
		attribute, _, _ := strings.Cut(param, "=")
		attribute = strings.ToLower(strings.TrimSpace(attribute))
		if attribute == "name" || strings.HasPrefix(attribute, "name*") {
			count++
			extended = extended || attribute != "name"
		}
	}
	return count, extended
}

// isKeyField: a form field name is connectionKey, also as the last part of
// a nested name (input[connectionKey], input.connectionKey), or followed
// by list indexes only (connectionKey[], connectionKey[0],
// connectionKey.0), which servers such as PHP and Node's qs read as a list
// of keys (and a list of one stringifies to its key).
func isKeyField(name string) bool {
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == '[' || r == ']' || r == '.' })
	for len(parts) > 0 && strings.Trim(parts[len(parts)-1], "0123456789") == "" {
		parts = parts[:len(parts)-1]
	}
	return len(parts) > 0 && isConnectionKeyName(parts[len(parts)-1])
}

// isConnectionKeyName: name is connectionKey however a parser might fold it:
// any case (Unicode folding, as encoding/json matches), compatibility forms,
// and '_', '-', '.', spaces and invisible characters left out.
func isConnectionKeyName(name string) bool {
	if len(name) < len("connectionkey") {
		return false
	}
	folded := strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == '.' || unicode.IsSpace(r) || unicode.In(r, unicode.Mn, unicode.Cf) {
			return -1
		}
		return r
	}, norm.NFKC.String(name))
	return strings.EqualFold(folded, "connectionkey")
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
