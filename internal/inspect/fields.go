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
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// The checks of the fields a body names: connectionKey in JSON, forms and
// multipart parts, however a parser might spell it.

// maxNestedJSON bounds how deep JSON carried inside JSON strings is checked.
const maxNestedJSON = 3

// maxNestedMultipart bounds how deep multipart bodies inside parts are read.
const maxNestedMultipart = 2

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

// PinQuery makes sure a passthrough call's query names no other connection
// key than key, as PinBody does for its body: an endpoint might read
// connectionKey from the query too. Fields are read as servers split them
// (on & and ;) and percent-decoded; one that cannot be decoded is refused.
func PinQuery(rawQuery, key string) error {
	if isASCII(rawQuery) && !strings.ContainsAny(rawQuery, "%+") && !strings.Contains(strings.ToLower(rawQuery), "key") {
		return nil // no field can be named like a key
	}
	named := false
	for _, field := range strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		rawName, rawValue, _ := strings.Cut(field, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return refuse(http.StatusBadRequest, "query_invalid", "the query string is malformed")
		}
		if !isKeyField(name) {
			continue
		}
		if value, err := url.QueryUnescape(rawValue); err != nil || value != key {
			return errOtherKey()
		}
		if named {
			return errAmbiguous()
		}
		named = true
	}
	return nil
}
