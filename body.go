package caddyauthkit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// maxInspectedBody is the largest passthrough body the gateway reads to
// check the connection key it names; a larger one that needs checking is
// refused rather than sent unchecked.
const maxInspectedBody = 1 << 20

// maxNestedJSON bounds how deep JSON carried inside JSON strings is checked.
const maxNestedJSON = 3

// pinBody makes sure a passthrough body that could name a connection key
// names only the checked one: a vendor endpoint reading connectionKey from
// the body must not act on another connection than the headers proved.
// Bodies are judged by content, not by Content-Type: anything that starts
// like JSON (after whitespace and a UTF-8 BOM) is read whole, up to
// maxInspectedBody, and checked; so are form bodies. Compressed bodies cannot
// be checked and are refused. All other bodies keep streaming.
func pinBody(r *http.Request, call *checkedCall) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	for _, coding := range r.Header.Values("Content-Encoding") {
		if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
			return newError(http.StatusUnsupportedMediaType, "body_encoding_unsupported", "compressed request bodies are not accepted on passthrough")
		}
	}
	head, first, err := peekContent(r.Body)
	if err != nil {
		return err
	}
	mediaType, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	form := mediaType == "application/x-www-form-urlencoded"
	charset := strings.ToLower(params["charset"])
	switch {
	case bytes.HasPrefix(head, []byte{0xfe, 0xff}) || bytes.HasPrefix(head, []byte{0xff, 0xfe}) || bytes.HasPrefix(head, []byte{0, 0, 0xfe, 0xff}) ||
		(strings.Contains(mediaType, "json") || form) && charset != "" && charset != "utf-8" && charset != "us-ascii":
		// UTF-16/32: some parsers decode it; this check would not see the key.
		return newError(http.StatusUnsupportedMediaType, "body_encoding_unsupported", "JSON and form request bodies must be UTF-8")
	case first != '{' && first != '[' && !form:
		r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		return nil
	}
	rest, err := io.ReadAll(io.LimitReader(r.Body, int64(maxInspectedBody-len(head)+1)))
	if err != nil {
		return errBodyInvalid()
	}
	whole := append(head, rest...)
	if len(whole) > maxInspectedBody {
		return newError(http.StatusRequestEntityTooLarge, "body_too_large", "a JSON or form passthrough body is checked, and must not exceed "+strconv.Itoa(maxInspectedBody)+" bytes")
	}
	if form {
		err = checkForm(whole, call.connectionKey)
	} else {
		err = checkJSON(contentStart(whole), call.connectionKey, 0)
	}
	if err != nil {
		return err
	}
	r.Body = readCloser{bytes.NewReader(whole), r.Body}
	r.ContentLength = int64(len(whole))
	r.TransferEncoding = nil
	return nil
}

// peekContent reads up to the first byte that is not whitespace or a UTF-8
// BOM, and returns what it read and that byte (0 at the end of the body).
func peekContent(body io.Reader) ([]byte, byte, error) {
	head := make([]byte, 0, 512)
	for {
		if len(head) == cap(head) {
			if len(head) >= maxInspectedBody {
				return nil, 0, newError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body starts with too much whitespace")
			}
			head = append(head, make([]byte, len(head))...)[:len(head)]
		}
		n, err := body.Read(head[len(head):cap(head)])
		head = head[:len(head)+n]
		if c, ok := firstContent(head); ok {
			return head, c, nil
		}
		if errors.Is(err, io.EOF) {
			return head, 0, nil
		}
		if err != nil {
			return nil, 0, errBodyInvalid()
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

// checkJSON walks every JSON value in b (a stream of them, as NDJSON) and
// checks each member named like connectionKey, at any depth: its value must
// be the checked key, and it may appear once per object, since parsers
// differ on which duplicate they keep. JSON carried in strings is checked
// too. A body that starts like JSON but is not JSON is refused: a lenient
// parser behind the vendor might still read a key from it.
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
			return newError(http.StatusBadRequest, "body_invalid", "the request body starts like JSON but is not JSON")
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
				return errBodyNamesOtherKey()
			}
			if v == '{' || v == '[' {
				stack = append(stack, &frame{object: v == '{', wantKey: v == '{'})
				continue
			}
			stack = stack[:len(stack)-1] // ']'
		case string:
			if checkNext && v != key {
				return errBodyNamesOtherKey()
			}
			if inner := strings.TrimSpace(v); !checkNext && depth < maxNestedJSON && (strings.HasPrefix(inner, "{") || strings.HasPrefix(inner, "[")) {
				var e *apiError
				if err := checkJSON([]byte(inner), key, depth+1); errors.As(err, &e) && e.Code != "body_invalid" {
					return err
				}
			}
		default:
			if checkNext {
				return errBodyNamesOtherKey()
			}
		}
		valueDone()
	}
	if ambiguous {
		return newError(http.StatusBadRequest, "body_ambiguous", "the body names a connection key more than once in one object")
	}
	return nil
}

// checkForm checks a form body's fields named like connectionKey, also as
// the last part of a nested name (input[connectionKey], input.connectionKey).
func checkForm(b []byte, key string) error {
	values, err := url.ParseQuery(string(b))
	if err != nil {
		return newError(http.StatusBadRequest, "body_invalid", "the form body is malformed")
	}
	for name, vs := range values {
		parts := strings.FieldsFunc(name, func(r rune) bool { return r == '[' || r == ']' || r == '.' })
		if len(parts) == 0 || !isConnectionKeyName(parts[len(parts)-1]) {
			continue
		}
		for _, v := range vs {
			if v != key {
				return errBodyNamesOtherKey()
			}
		}
		if len(vs) > 1 {
			return newError(http.StatusBadRequest, "body_ambiguous", "the body names a connection key more than once")
		}
	}
	return nil
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

func errBodyNamesOtherKey() *apiError {
	return newError(http.StatusForbidden, "connection_not_owned", "the body names another connection than the connection key header")
}

// readCloser reads from one reader and closes the client's body.
type readCloser struct {
	io.Reader
	io.Closer
}
