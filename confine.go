package caddyauthkit

import (
	"net/http"
	"path"
	"strings"
	"unicode/utf8"
)

// passthroughBase is where every passthrough call must stay.
const passthroughBase = "/v1/passthrough/"

// confinePath turns the escaped path after {prefix}/passthrough/ into the
// decoded upstream path, refusing anything that could leave /v1/passthrough/:
// dot segments (also "..;" and fullwidth dots), backslashes, and escapes of
// dots, slashes, backslashes, percent signs (double encoding) and controls.
func confinePath(rest string) (string, error) {
	refuse := func(why string) (string, error) {
		return "", newError(http.StatusBadRequest, "path_invalid", "the passthrough path "+why)
	}
	if rest == "" {
		return refuse("is empty")
	}
	if strings.ContainsAny(rest, `\`) {
		return refuse("contains a backslash")
	}
	var decoded strings.Builder
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c < 0x21 || c == 0x7f {
			return refuse("contains a control character or space")
		}
		if c != '%' {
			decoded.WriteByte(c)
			continue
		}
		if i+2 >= len(rest) || !isHex(rest[i+1]) || !isHex(rest[i+2]) {
			return refuse("contains a malformed escape")
		}
		b := unhex(rest[i+1])<<4 | unhex(rest[i+2])
		if b == '.' || b == '/' || b == '\\' || b == '%' || b < 0x20 || b == 0x7f {
			return refuse("contains an encoded dot, slash, backslash, percent sign or control character")
		}
		decoded.WriteByte(b)
		i += 2
	}
	if !utf8.ValidString(decoded.String()) {
		return refuse("is not UTF-8") // overlong encodings of dots among them
	}
	for segment := range strings.SplitSeq(decoded.String(), "/") {
		segment, _, _ = strings.Cut(segment, ";")
		if strings.ContainsAny(segment, "\uff0e\u2024\ufe52") {
			segment = lookalikeDots.Replace(segment)
		}
		if segment == "." || segment == ".." {
			return refuse("contains a dot segment")
		}
	}
	upstream := passthroughBase + decoded.String()
	if !strings.HasPrefix(path.Clean(upstream)+"/", passthroughBase) {
		return refuse("leaves the passthrough API")
	}
	return upstream, nil
}

// lookalikeDots are characters some servers fold into "." (fullwidth,
// one-dot leader, small full stop).
var lookalikeDots = strings.NewReplacer("\uff0e", ".", "\u2024", ".", "\ufe52", ".")

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
