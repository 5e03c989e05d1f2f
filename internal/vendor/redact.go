package vendor

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// maxQuoted is the longest vendor text the gateway quotes.
const maxQuoted = 300

// secretPiece is the shortest piece of the secret that is never quoted.
const secretPiece = 8

// keyShapes match connection keys ({env}::{platform}::…, with any identity
// suffix) and secret keys (sk_test_…, sk_live_…), whoever's they are.
var keyShapes = regexp.MustCompile(`(?i)\b(?:test|live)::[^\s"',;]+|\bsk_[a-z0-9_\-]{6,}`)

// encodedRuns are runs of characters that may hide the secret in base64 or
// hex, long enough to hold a piece of it.
var encodedRuns = regexp.MustCompile(`[A-Za-z0-9+/_\-]{11,}={0,2}`)

const redacted = "[redacted]"

// Redact returns a vendor's text fit to quote to a caller, or "" when none
// of it is: at most 300 bytes, no control characters, anything shaped like a
// connection key or a secret key replaced, and any piece of the secret of 8
// or more characters removed, in any case. Where a piece of the secret shows
// only once the text is decoded (percent, JSON escapes, base64, hex), the
// whole text goes.
func Redact(text, secret string) string {
	if text == "" || len(text) > maxQuoted || strings.IndexFunc(text, unicode.IsControl) >= 0 {
		return ""
	}
	text = keyShapes.ReplaceAllString(text, redacted)
	pieces := secretPieces(secret)
	text = cutPieces(text, pieces)
	for _, decoded := range decodings(text) {
		if len(cutPieces(decoded, pieces)) != len(decoded) {
			return ""
		}
	}
	return text
}

// secretPieces is every 8-character piece of the secret, lower-cased.
func secretPieces(secret string) map[string]bool {
	lower := strings.ToLower(secret)
	pieces := make(map[string]bool, len(lower))
	for i := 0; i+secretPiece <= len(lower); i++ {
		pieces[lower[i:i+secretPiece]] = true
	}
	return pieces
}

// cutPieces replaces every run of text covered by pieces of the secret.
func cutPieces(text string, pieces map[string]bool) string {
	if len(pieces) == 0 || len(text) < secretPiece {
		return text
	}
	lower := strings.ToLower(text)
	if len(lower) != len(text) { // case folding changed lengths: judge bytes as they are
		lower = text
	}
	covered := make([]bool, len(text))
	found := false
	for i := 0; i+secretPiece <= len(lower); i++ {
		if pieces[lower[i:i+secretPiece]] {
			found = true
			for j := i; j < i+secretPiece; j++ {
				covered[j] = true
			}
		}
	}
	if !found {
		return text
	}
	var out strings.Builder
	for i := 0; i < len(text); {
		if !covered[i] {
			out.WriteByte(text[i])
			i++
			continue
		}
		for i < len(text) && covered[i] {
			i++
		}
		out.WriteString(redacted)
	}
	return out.String()
}

// decodings are the text read as a server might have encoded it.
func decodings(text string) []string {
	var out []string
	if s, err := url.QueryUnescape(text); err == nil && s != text {
		out = append(out, s)
	}
	if strings.Contains(text, `\`) {
		if s, err := strconv.Unquote(`"` + strings.ReplaceAll(text, `"`, `\"`) + `"`); err == nil {
			out = append(out, s)
		}
	}
	for _, run := range encodedRuns.FindAllString(text, -1) {
		trimmed := strings.TrimRight(run, "=")
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			for cut := 0; cut < 4 && cut < len(trimmed); cut++ { // the piece may start mid-group
				if b, err := enc.DecodeString(trimmed[cut : cut+(len(trimmed)-cut)/4*4]); err == nil {
					out = append(out, string(b))
				}
			}
		}
		for cut := 0; cut < 2 && cut < len(run); cut++ {
			if b, err := hex.DecodeString(run[cut : cut+(len(run)-cut)/2*2]); err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}
