package vendor

// A validating JSON scanner for the vendor's list answers. In one pass it
// checks a body is valid JSON, as encoding/json.Valid would, and finds the
// top-level fields of the object without decoding them, so a token's rows
// are copied, never decoded. It is fuzzed against encoding/json.

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
	fields, ok := objectFields(body)
	if !ok {
		return nil, BadAnswer("not a valid JSON object")
	}
	if rows := fields["rows"]; len(rows) < 2 || rows[0] != '[' {
		return nil, BadAnswer("no rows array")
	}
	return fields, nil
}

// objectFields returns the raw values of a top-level JSON object's keys,
// named as encoding/json names them (escapes decoded, invalid UTF-8
// replaced, the last of duplicates kept), or false if body is not such an
// object, valid JSON throughout.
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
		keyEnd := skipString(body, i)
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
		end := skipValue(body, i, 1)
		if end < 0 {
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

// maxDepth is encoding/json's limit of nested arrays and objects, so that
// both accept the same bodies.
const maxDepth = 10000

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value that starts at i, inside
// depth arrays and objects, or -1 when there is none.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{', c == '[':
		return skipContainer(b, i, depth+1)
	case c == '-', c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return -1
}

// skipContainer returns the end of the object or array at i, depth deep.
func skipContainer(b []byte, i, depth int) int {
	if depth > maxDepth {
		return -1
	}
	closing := byte(']')
	if b[i] == '{' {
		closing = '}'
	}
	if i = skipSpace(b, i+1); i < len(b) && b[i] == closing {
		return i + 1
	}
	for {
		if closing == '}' {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i = skipString(b, i); i < 0 {
				return -1
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
		if i = skipValue(b, i, depth); i < 0 {
			return -1
		}
		if i = skipSpace(b, i); i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closing:
			return i + 1
		default:
			return -1
		}
	}
}

// skipString returns the end of the string at i: no control characters,
// only JSON's escapes. Other bytes pass as encoding/json lets them.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i++; i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+5 > len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipNumber returns the end of the number at i, as JSON writes numbers.
func skipNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i = skipDigits(b, i+1); b[i-1] == '.' {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		if i = skipDigits(b, i); i == start {
			return -1
		}
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func skipLiteral(b []byte, i int, literal string) int {
	if !bytes.HasPrefix(b[i:], []byte(literal)) {
		return -1
	}
	return i + len(literal)
}
