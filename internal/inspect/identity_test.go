package inspect

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIdentity(t *testing.T) {
	for id, invalid := range map[string]bool{
		"alice":                  false,
		"user_123@example.com":   false,
		"Zoë Ü 名前":               false,
		strings.Repeat("a", 128): false,
		"":                       true,
		"   ":                    true,
		"\t\n":                   true,
		strings.Repeat("a", 129): true,
		"alice\r\nX-Injected: 1": true,
		"ali\x00ce":              true,
		"\x00alice":              true,
		"\x1b[31malice":          true,
		"ali\x7fce":              true,
		"ali\u0085ce":            true,
		"\xff\xfe":               true,
		"\xc0\xae":               true,
	} {
		if got := Identity(id) != ""; got != invalid {
			t.Errorf("Identity(%q) says invalid=%v, want %v", id, got, invalid)
		}
	}
}

// FuzzIdentity: an identity let through is UTF-8 of at most 128 bytes,
// not blank, without any control character (C0, DEL, C1), so it is safe
// in a header, a query and a log line. Seeds: testdata/fuzz/FuzzIdentity.
func FuzzIdentity(f *testing.F) {
	f.Fuzz(func(t *testing.T, id string) {
		if Identity(id) != "" {
			return
		}
		if len(id) > MaxIdentityLength || !utf8.ValidString(id) || strings.TrimSpace(id) == "" ||
			strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || 0x7f <= r && r < 0xa0 }) {
			t.Fatalf("Identity let %q through", id)
		}
	})
}
