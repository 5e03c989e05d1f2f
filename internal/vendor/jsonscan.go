package vendor

// A structural JSON scanner for the vendor's list answers. Once
// encoding/json has said a body is valid, it finds the top-level fields of
// the object without decoding them, so a token's rows are copied, never
// decoded. It is fuzzed against encoding/json.

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// parseList checks that body is valid JSON, an object with a rows array, as
// every list answer of the vendor is, and returns its top-level fields raw.
// Invalid JSON anywhere (a row included) is refused: the gateway relays
// these bytes to browsers.
func parseList(body []byte) (map[string][]byte, error) {
	if !json.Valid(body) {
		return nil, BadAnswer("not valid JSON")
	}
	fields, ok := objectFields(body)
	if !ok {
		return nil, BadAnswer("not a JSON object")
	}
	if rows := fields["rows"]; len(rows) < 2 || rows[0] != '[' {
		return nil, BadAnswer("no rows array")
	}
	return fields, nil
}

// objectFields returns the raw values of a top-level JSON object's keys,
// named as encoding/json names them (escapes decoded, invalid UTF-8
// replaced, the last of duplicates kept), or false if body is not such an
// object.
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
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
			// A name as every JSON parser reads it: "r\u006fws" is rows
			// (and the last of two rows is the one they keep).
			var name string
			if json.Unmarshal(body[i:keyEnd], &name) != nil {
				return nil, false
			}
			key = []byte(name)
		}
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
