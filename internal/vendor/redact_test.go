package vendor

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// TestRedactRemovesKeysAndAnyPieceOfTheSecret: what the vendor says is
// quoted only without connection keys, secret keys, and any piece of the
// secret of 8 or more characters, in any case and encoding, also where the
// encoded secret is glued to characters of another alphabet ("0x" before
// hex, "key-" before base64 failed the decoding of the whole run, so the
// secret went through).
func TestRedactRemovesKeysAndAnyPieceOfTheSecret(t *testing.T) {
	piece := testSecret[10:18] // 8 characters: CADDYAUT
	for name, text := range map[string]string{
		"connection key":       "no connection test::gmail::default::af92aee9cbcd4aae904b9b01d3c75c40|bob here",
		"live key":             "key live::slack::default::0123456789abcdef0123456789abcdef is gone",
		"secret":               "bad key " + testSecret,
		"secret upper-cased":   "bad key " + strings.ToUpper(testSecret),
		"secret lower-cased":   "bad key " + strings.ToLower(testSecret),
		"secret cut short":     "bad key …" + testSecret[12:30] + "…",
		"a piece of 8":         "starts " + piece + " ends",
		"a piece in any case":  "starts " + strings.ToLower(piece) + " ends",
		"other secret key":     "try sk_live_1_abcdefghijklmnop",
		"percent-encoded":      "bad " + url.QueryEscape(testSecret),
		"percent, every byte":  "bad " + everyBytePercent(testSecret[5:20]),
		"base64":               "bad " + base64.StdEncoding.EncodeToString([]byte(testSecret)),
		"base64 mid-group":     "bad x" + base64.RawURLEncoding.EncodeToString([]byte("xx"+testSecret[10:30])),
		"hex":                  "bad " + hex.EncodeToString([]byte(testSecret[10:30])),
		"hex after 0x":         "bad 0x" + hex.EncodeToString([]byte(testSecret[10:30])),
		"hex glued to words":   "bad token" + hex.EncodeToString([]byte(testSecret[10:30])) + "zz",
		"base64 after key-":    "bad key-" + base64.StdEncoding.EncodeToString([]byte("??>"+testSecret[10:30])),
		"base64 before -x":     "bad " + base64.RawStdEncoding.EncodeToString([]byte("??>"+testSecret[10:30])) + "-x",
		"base64url after abc+": "bad abc+" + base64.RawURLEncoding.EncodeToString([]byte("??>"+testSecret[10:30])),
		"8 between + and /":    "bad " + base64.RawStdEncoding.EncodeToString([]byte("??>"+piece+"??>")),
		"8 between - and _":    "bad " + base64.RawURLEncoding.EncodeToString([]byte("??>"+piece+"??>")),
		"base64, second run":   "request 1234567890abc: " + base64.StdEncoding.EncodeToString([]byte(testSecret)),
		"JSON unicode escapes": `bad \u0043\u0041\u0044\u0044\u0059\u0041\u0055\u0054KIT`,
	} {
		got := redact(text, testSecret)
		for _, banned := range []string{"af92aee9", "0123456789abcdef", strings.ToLower(piece), "abcdefghijklmnop"} {
			if strings.Contains(strings.ToLower(got), banned) {
				t.Fatalf("%s: redact(%q) = %q keeps %q", name, text, got, banned)
			}
		}
		if got == text {
			t.Fatalf("%s: redact(%q) changed nothing", name, text)
		}
	}
	for _, text := range []string{"Invalid limit", "Connection header not found", "rate 7 of 8", "sk_ alone", "ABCDEFGH"} {
		if got := redact(text, testSecret); got != text {
			t.Fatalf("redact(%q) = %q, want it as it is", text, got)
		}
	}
	if got := redact("starts "+piece+" ends", testSecret); got != "starts [redacted] ends" {
		t.Fatalf("a piece of the secret in clear is cut where it stands: %q", got)
	}
	if got := redact(piece, testSecret); got != redacted {
		t.Fatalf("a text of just a piece of the secret: %q", got)
	}
	if got := redact("a\nb", testSecret); got != "" {
		t.Fatalf("control characters: %q", got)
	}
}

func everyBytePercent(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{s[i]})))
	}
	return b.String()
}

// TestRedactComparesCaseCharacterByCharacter: a piece of the secret is
// found in any case even next to a character whose lower case has another
// length (İ, Ⱥ, the Kelvin sign, a byte that is not UTF-8), which made
// redact compare the text's bytes as they were, so an upper-case piece
// went through (FuzzRedact found the byte that is not UTF-8).
func TestRedactComparesCaseCharacterByCharacter(t *testing.T) {
	for text, want := range map[string]string{
		"\xf2etVALUEn":                    "\xf2[redacted]",
		"İ CADDYAUTHKIT":                  "İ [redacted]",
		"[Ⱥ] CADDYAUT":                    "[Ⱥ] [redacted]",
		"x CADDYAUTH\u212aIT":             "x [redacted]", // a Kelvin sign for the K
		"Zoë: caddyauth\u212ait (ﬁne)":    "Zoë: [redacted] (ﬁne)",
		"名前 " + testSecret[20:40] + " 名前": "名前 [redacted] 名前",
	} {
		if got := redact(text, testSecret); got != want {
			t.Errorf("redact(%q) = %q, want %q", text, got, want)
		}
	}
}

// TestRedactSeesEveryPieceOnceDecoded: a piece of the secret that shows
// only once the text is decoded removes the whole text, also when the
// pieces found cover 10 characters, as long as "[redacted]" (Redact
// compared lengths before and after cutting).
func TestRedactSeesEveryPieceOnceDecoded(t *testing.T) {
	for _, n := range []int{8, 9, 10, 11, 20} {
		text := "bad " + everyBytePercent(testSecret[10:10+n])
		if got := redact(text, testSecret); got != "" {
			t.Errorf("%d characters of the secret, percent-encoded: redact(%q) = %q", n, text, got)
		}
	}
}

// TestRedactQuotesAtMost300Bytes: "[redacted]" is longer than the key
// shapes it may stand for ("test::a"), so a text under the limit can grow
// past it; then nothing is quoted.
func TestRedactQuotesAtMost300Bytes(t *testing.T) {
	text := strings.Repeat("test::a ", 37) // 296 bytes
	if got := redact(text, testSecret); len(got) > maxQuoted {
		t.Fatalf("Redact of %d bytes quotes %d", len(text), len(got))
	}
	if got := redact("test::a", testSecret); got != redacted {
		t.Fatalf("a short text with a key: %q", got)
	}
}

// TestRedactLeavesNoKeyShapeStanding: a connection key glued to a word
// ("connection_test::…") is cut too, and cutting a piece of the secret
// does not leave a secret key's shape standing at a new word boundary.
func TestRedactLeavesNoKeyShapeStanding(t *testing.T) {
	for text, want := range map[string]string{
		"x_test::gmail::default::abc":                          "x_[redacted]",
		"key:LIVE::slack::default::0123":                       "key:[redacted]",
		testSecret[10:] + "sk_abcdefgh":                        "[redacted][redacted]",
		"task_manager and latest news":                         "task_manager and latest news",
		"contest::x" + testSecret[30:] + "sk_live_1_abcdefghi": "con[redacted]",
	} {
		if got := redact(text, testSecret); got != want {
			t.Errorf("redact(%q) = %q, want %q", text, got, want)
		}
	}
}

// pieceOfSecret is a piece of 8 characters of the secret that text holds
// in any case (Unicode case folding: the Kelvin sign is a k), or "".
// "[redacted]" marks are no text.
func pieceOfSecret(text, secret string) string {
	runes := []rune(strings.ReplaceAll(text, redacted, "\x00"))
	s := []rune(secret)
	for i := 0; i+secretPiece <= len(s); i++ {
		piece := string(s[i : i+secretPiece])
		for j := 0; j+secretPiece <= len(runes); j++ {
			if window := string(runes[j : j+secretPiece]); strings.EqualFold(window, piece) {
				return window
			}
		}
	}
	return ""
}

// A connection key ({env}::{platform}::...) or a secret key (sk_...), as a
// caller reading the text would recognise one.
var (
	connectionKeyShape = regexp.MustCompile(`(?i)(?:test|live)::[^\s"',;]`)
	secretKeyShape     = regexp.MustCompile(`(?i)\bsk_[a-z0-9_\-]{6,}`)
)

// fuzzSecret is secret when it could be a vendor's secret key (8 to 100
// characters of [A-Za-z0-9_-]), else testSecret.
func fuzzSecret(secret string) string {
	if len(secret) < secretPiece || len(secret) > 100 || strings.IndexFunc(secret, func(r rune) bool {
		return !(r == '_' || r == '-' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)))
	}) >= 0 {
		return testSecret
	}
	return secret
}

// FuzzRedact: whatever the vendor says and whatever the secret, Redact's
// answer is "" or at most 300 bytes without control characters (UTF-8 when
// the text was), and neither it nor its percent-decoding holds a piece of
// 8 characters of the secret in any case, nor anything shaped like a
// connection key or a secret key.
func FuzzRedact(f *testing.F) {
	f.Fuzz(func(t *testing.T, text, secret string) {
		secret = fuzzSecret(secret)
		out := redact(text, secret)
		if out == "" {
			return
		}
		if len(out) > maxQuoted || strings.IndexFunc(out, unicode.IsControl) >= 0 || utf8.ValidString(text) && !utf8.ValidString(out) {
			t.Fatalf("redact(%q, %q) = %q: too long, control characters or broken UTF-8", text, secret, out)
		}
		if p := pieceOfSecret(out, secret); p != "" {
			t.Fatalf("redact(%q, %q) = %q keeps %q", text, secret, out, p)
		}
		if decoded, err := url.QueryUnescape(out); err == nil {
			if p := pieceOfSecret(decoded, secret); p != "" {
				t.Fatalf("redact(%q, %q) = %q keeps %q, percent-encoded", text, secret, out, p)
			}
		}
		if shape := connectionKeyShape.FindString(out) + secretKeyShape.FindString(out); shape != "" {
			t.Fatalf("redact(%q, %q) = %q keeps the key shape %q", text, secret, out, shape)
		}
	})
}
