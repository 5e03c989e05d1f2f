package inspect

import (
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// PassthroughBase is where every passthrough call must stay.
const PassthroughBase = "/v1/passthrough/"

// Path turns the escaped path after {prefix}/passthrough/ into the
// decoded upstream path, refusing anything that could leave /v1/passthrough/:
// dot segments (also "..;", and dots hidden by combining marks or invisible
// characters), backslashes, escapes of dots, slashes, backslashes, percent
// signs (double encoding) and controls, and any non-ASCII character whose
// NFKC form holds a separator (fullwidth solidus, two-dot leader, ...).
func Path(rest string) (string, error) {
	bad := func(why string) (string, error) {
		return "", refuse(http.StatusBadRequest, "path_invalid", "the passthrough path "+why)
	}
	if rest == "" {
		return bad("is empty")
	}
	if strings.ContainsAny(rest, `\`) {
		return bad("contains a backslash")
	}
	var decoded strings.Builder
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c < 0x21 || c == 0x7f {
			return bad("contains a control character or space")
		}
		if c != '%' {
			decoded.WriteByte(c)
			continue
		}
		if i+2 >= len(rest) || !isHex(rest[i+1]) || !isHex(rest[i+2]) {
			return bad("contains a malformed escape")
		}
		b := unhex(rest[i+1])<<4 | unhex(rest[i+2])
		if b == '.' || b == '/' || b == '\\' || b == '%' || b < 0x20 || b == 0x7f {
			return bad("contains an encoded dot, slash, backslash, percent sign or control character")
		}
		decoded.WriteByte(b)
		i += 2
	}
	if !utf8.ValidString(decoded.String()) {
		return bad("is not UTF-8") // overlong encodings of dots among them
	}
	for _, r := range decoded.String() {
		if r >= utf8.RuneSelf && lookalike(r) {
			return bad("contains a character that a server may read as a dot, slash, backslash, percent sign, semicolon, question mark or hash")
		}
	}
	for segment := range strings.SplitSeq(decoded.String(), "/") {
		segment, _, _ = strings.Cut(segment, ";")
		if segment = invisibleFree(segment); segment == "." || segment == ".." {
			return bad("contains a dot segment")
		}
	}
	upstream := PassthroughBase + decoded.String()
	if !strings.HasPrefix(path.Clean(upstream)+"/", PassthroughBase) {
		return bad("leaves the passthrough API")
	}
	return upstream, nil
}

// lookalike: r is not ASCII but folds (NFKC, or the ideographic full stops
// that IDNA maps to '.') into a character that separates or escapes paths.
func lookalike(r rune) bool {
	switch r {
	case '\u3002', '\uff61', '\ufe12':
		return true
	}
	return strings.ContainsAny(norm.NFKC.String(string(r)), `./\%;?#`)
}

// invisibleFree drops combining marks and format characters, which some
// servers strip, so "." followed by U+0301 or U+200B counts as a dot.
func invisibleFree(segment string) string {
	if isASCII(segment) {
		return segment
	}
	return strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) {
			return -1
		}
		return r
	}, norm.NFKC.String(segment))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
