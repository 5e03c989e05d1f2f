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
// suffix, wherever they start: "connection_test::…" holds one) and secret
// keys (sk_test_…, sk_live_…), whoever's they are.
var keyShapes = regexp.MustCompile(`(?i)(?:test|live)::[^\s"',;]+|\bsk_[a-z0-9_\-]{6,}`)

// encodedRuns are runs of characters that may hide the secret in base64 or
// hex, long enough to hold a piece of it.
var encodedRuns = regexp.MustCompile(`[A-Za-z0-9+/_\-]{11,}={0,2}`)

const redacted = "[redacted]"

// redact returns a vendor's text fit to quote to a caller, or "" when none
// of it is: at most 300 bytes, no control characters, any piece of the
// secret of 8 or more characters removed, in any case, and anything shaped
// like a connection key or a secret key replaced. Where a piece of the
// secret shows only once the text is decoded (percent, JSON escapes,
// base64, hex), the whole text goes.
func redact(text, secret string) string {
	if text == "" || len(text) > maxQuoted || strings.IndexFunc(text, unicode.IsControl) >= 0 {
		return ""
	}
	pieces := secretPieces(secret)
	// Pieces first: a piece cut out of "…42sk_live_…" must not leave a
	// key shape standing after "[redacted]".
	text, _ = cutPieces(text, pieces)
	text = keyShapes.ReplaceAllString(text, redacted)
	for _, decoded := range decodings(text) {
		if _, found := cutPieces(decoded, pieces); found {
			return ""
		}
	}
	if len(text) > maxQuoted { // "[redacted]" is longer than what it stands for
		return ""
	}
	return text
}

// secretPieces is every piece of secretPiece characters of the secret,
// case-folded (see foldCase).
func secretPieces(secret string) map[string]bool {
	folded := []rune(secret)
	for i, r := range folded {
		folded[i] = foldCase(r)
	}
	pieces := make(map[string]bool, len(folded))
	for i := 0; i+secretPiece <= len(folded); i++ {
		pieces[string(folded[i:i+secretPiece])] = true
	}
	return pieces
}

// foldCase is the one rune that stands for all the case variants of r
// (the least of its Unicode case-folding orbit: K, k and the Kelvin sign
// are K), so text is compared character by character whatever its case,
// and whatever lengths its characters have when lower-cased (İ, Ⱥ, or a
// byte that is not UTF-8, read as U+FFFD).
func foldCase(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}

// cutPieces replaces every run of text covered by pieces of the secret,
// in whole characters, and says whether there was one.
func cutPieces(text string, pieces map[string]bool) (string, bool) {
	if len(pieces) == 0 || len(text) < secretPiece {
		return text, false
	}
	starts := make([]int, 0, len(text)+1) // of each character, in bytes
	folded := make([]rune, 0, len(text))
	for i, r := range text {
		starts = append(starts, i)
		folded = append(folded, foldCase(r))
	}
	starts = append(starts, len(text))
	covered := make([]bool, len(folded))
	found := false
	for i := 0; i+secretPiece <= len(folded); i++ {
		if pieces[string(folded[i:i+secretPiece])] {
			found = true
			for j := i; j < i+secretPiece; j++ {
				covered[j] = true
			}
		}
	}
	if !found {
		return text, false
	}
	var out strings.Builder
	for i := 0; i < len(folded); {
		if !covered[i] {
			out.WriteString(text[starts[i]:starts[i+1]])
			i++
			continue
		}
		for i < len(folded) && covered[i] {
			i++
		}
		out.WriteString(redacted)
	}
	return out.String(), true
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
	// Each encoding reads the parts of a run in its own alphabet: "key-"
	// before standard base64, or "0x" before hex, failed the decoding of
	// the whole run and hid the secret behind it.
	for _, run := range encodedRuns.FindAllString(text, -1) {
		trimmed := strings.TrimRight(run, "=")
		for _, alphabet := range base64Alphabets {
			for _, part := range strings.FieldsFunc(trimmed, alphabet.outside) {
				for cut := 0; cut < 4 && cut < len(part); cut++ { // the piece may start mid-group
					if b, err := alphabet.enc.DecodeString(part[cut : cut+(len(part)-cut)/4*4]); err == nil {
						out = append(out, string(b))
					}
				}
			}
		}
		for _, part := range strings.FieldsFunc(run, func(r rune) bool { return !isHex(byte(r)) }) {
			for cut := 0; cut < 2 && cut < len(part); cut++ {
				if b, err := hex.DecodeString(part[cut : cut+(len(part)-cut)/2*2]); err == nil {
					out = append(out, string(b))
				}
			}
		}
	}
	return out
}

// base64Alphabets are the two base64 encodings, each with what ends a run
// of its alphabet in an encoded run.
var base64Alphabets = []struct {
	enc     *base64.Encoding
	outside func(rune) bool
}{
	{base64.RawStdEncoding, func(r rune) bool { return r == '-' || r == '_' }},
	{base64.RawURLEncoding, func(r rune) bool { return r == '+' || r == '/' }},
}
