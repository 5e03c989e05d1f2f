package inspect

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// lookalikeAttacks are paths whose separators are Unicode lookalikes, raw
// and percent-encoded as UTF-8: a server folding them (NFKC, IDNA) would
// read a dot segment or a slash.
var lookalikeAttacks = []string{
	"\uff0e\uff0e/vault",         // fullwidth full stops
	"%EF%BC%8E%EF%BC%8E/vault",   // the same, encoded
	"\u2025/vault",               // two dot leader: ".."
	"%E2%80%A5/vault",            // the same, encoded
	"\u2024\u2024/vault",         // one dot leaders
	"\ufe52\ufe52/vault",         // small full stops
	"\ufe30/vault",               // vertical two dot leader
	"%EF%B9%92.%2fvault",         // small full stop and an encoded slash
	"users\uff0f..\uff0fvault",   // fullwidth solidus
	"users%EF%BC%8F..%EF%BC%8Fx", // the same, encoded
	"..\uff3c..\uff3cvault",      // fullwidth reverse solidus
	"\u3002\u3002/vault",         // ideographic full stops (IDNA dots)
	"\uff61\uff61/vault",         // halfwidth ideographic full stops
	"x\uff05252e/y",              // fullwidth percent sign
	"..\uff1b/vault",             // fullwidth semicolon
	"..\u037e/vault",             // Greek question mark, NFKC ';'
	"x\uff1f/y",                  // fullwidth question mark
	"x\uff03/y",                  // fullwidth number sign
	".\u0301./vault",             // combining acute between dots
	"..\u200b/vault",             // zero width space after the dots
	".%CC%81./vault",             // combining mark, encoded
	"%E2%80%8B../vault",          // zero width space before, encoded
	"..\u00ad/vault",             // soft hyphen
	"\u2488/vault",               // "1." digit full stop
}

func TestPathRefusesLookalikes(t *testing.T) {
	for _, rest := range lookalikeAttacks {
		if got, err := Path(rest); err == nil {
			t.Errorf("Path(%q) = %q, want refused", rest, got)
		}
	}
}

func TestPathKeepsHarmlessUnicode(t *testing.T) {
	for rest, want := range map[string]string{
		"files/r%C3%A9sum%C3%A9.pdf": "/v1/passthrough/files/résumé.pdf",
		"files/日本語/x":                "/v1/passthrough/files/日本語/x",
		"users/caf\u00e9":            "/v1/passthrough/users/café",
		"files/r%c3%a9sum%c3%a9.pdf": "/v1/passthrough/files/résumé.pdf", // lower-case escapes
		"names/%C3%BF/%c3%bf":        "/v1/passthrough/names/ÿ/ÿ",        // F and f as the low digit
	} {
		got, err := Path(rest)
		if err != nil || got != want {
			t.Errorf("Path(%q) = %q, %v; want %q", rest, got, err, want)
		}
	}
}

// FuzzPath: whatever the client sends, a path let through stays under
// /v1/passthrough/ however often it is decoded; after NFKC and the removal
// of invisible characters it holds no dot segment, and no non-ASCII
// character in it folds into a separator. Seeds: testdata/fuzz/FuzzPath
// (the path attacks of the passthrough tests, and lookalikeAttacks).
func FuzzPath(f *testing.F) {
	f.Fuzz(func(t *testing.T, rest string) {
		upstream, err := Path(rest)
		if err != nil {
			return
		}
		p := upstream
		for range 4 {
			if u, err := url.PathUnescape(p); err == nil {
				p = u
			}
		}
		if p = path.Clean(strings.ReplaceAll(p, "\\", "/")); !strings.HasPrefix(p+"/", PassthroughBase) {
			t.Fatalf("Path(%q) = %q, which decodes to %q", rest, upstream, p)
		}
		folded := norm.NFKC.String(upstream)
		if !strings.HasPrefix(folded, PassthroughBase) || !strings.HasPrefix(path.Clean(folded)+"/", PassthroughBase) {
			t.Fatalf("Path(%q) = %q leaves the passthrough API after NFKC", rest, upstream)
		}
		for segment := range strings.SplitSeq(strings.TrimPrefix(folded, PassthroughBase), "/") {
			segment, _, _ = strings.Cut(segment, ";")
			visible := strings.Map(func(r rune) rune {
				if unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) {
					return -1
				}
				return r
			}, segment)
			if visible == "." || visible == ".." {
				t.Fatalf("Path(%q) = %q has a dot segment after NFKC", rest, upstream)
			}
		}
		for _, r := range strings.TrimPrefix(upstream, PassthroughBase) {
			if r > unicode.MaxASCII && strings.ContainsAny(norm.NFKC.String(string(r)), `./\%;?#`) {
				t.Fatalf("Path(%q) let %q through, which folds into a separator", rest, r)
			}
		}
		if u, err := url.PathUnescape(folded); err == nil && !strings.HasPrefix(path.Clean(u)+"/", PassthroughBase) {
			t.Fatalf("Path(%q) = %q leaves after NFKC and decoding", rest, upstream)
		}
	})
}

// TestPathRefusesMalformedEscapes: a percent sign not followed by two hex
// digits, also at the very end of the path, is refused 400.
func TestPathRefusesMalformedEscapes(t *testing.T) {
	for _, rest := range []string{"%", "x/%", "x/%4", "x/%4/y", "x/%g1", "x/%1g", "x/%%41"} {
		if got, err := Path(rest); err == nil || err.(*Refusal).Status != 400 {
			t.Errorf("Path(%q) = %q, %v; want refused 400", rest, got, err)
		}
	}
}

func TestPathKeepsGoodPaths(t *testing.T) {
	for rest, want := range map[string]string{
		"users/me":                 "/v1/passthrough/users/me",
		"users/me%40example.com/x": "/v1/passthrough/users/me@example.com/x",
		"a%20b/c.json":             "/v1/passthrough/a b/c.json",
		"crm/v3/objects/contacts/": "/v1/passthrough/crm/v3/objects/contacts/",
		"files/.well-known/x":      "/v1/passthrough/files/.well-known/x",
		"v1/...":                   "/v1/passthrough/v1/...",
		"search/it!s":              "/v1/passthrough/search/it!s",
	} {
		got, err := Path(rest)
		if err != nil || got != want {
			t.Errorf("Path(%q) = %q, %v; want %q", rest, got, err, want)
		}
	}
}

func BenchmarkPath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Path("gmail/v1/users/me%40example.com/messages"); err != nil {
			b.Fatal(err)
		}
	}
}
