package caddyauthkit

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

func TestConfinePathRefusesLookalikes(t *testing.T) {
	for _, rest := range lookalikeAttacks {
		if got, err := confinePath(rest); err == nil {
			t.Errorf("confinePath(%q) = %q, want refused", rest, got)
		}
	}
}

func TestConfinePathKeepsHarmlessUnicode(t *testing.T) {
	for rest, want := range map[string]string{
		"files/r%C3%A9sum%C3%A9.pdf": "/v1/passthrough/files/résumé.pdf",
		"files/日本語/x":                "/v1/passthrough/files/日本語/x",
		"users/caf\u00e9":            "/v1/passthrough/users/café",
	} {
		got, err := confinePath(rest)
		if err != nil || got != want {
			t.Errorf("confinePath(%q) = %q, %v; want %q", rest, got, err, want)
		}
	}
}

// FuzzConfinePathNFKC: what passes, after NFKC and the removal of invisible
// characters, holds no dot segment and stays under /v1/passthrough/, and no
// non-ASCII character in it folds into a separator.
func FuzzConfinePathNFKC(f *testing.F) {
	for _, attack := range lookalikeAttacks {
		f.Add(attack)
	}
	f.Add("users/me")
	f.Add("files/r%C3%A9sum%C3%A9.pdf")
	f.Fuzz(func(t *testing.T, rest string) {
		upstream, err := confinePath(rest)
		if err != nil {
			return
		}
		folded := norm.NFKC.String(upstream)
		if !strings.HasPrefix(folded, passthroughBase) || !strings.HasPrefix(path.Clean(folded)+"/", passthroughBase) {
			t.Fatalf("confinePath(%q) = %q leaves the passthrough API after NFKC", rest, upstream)
		}
		for segment := range strings.SplitSeq(strings.TrimPrefix(folded, passthroughBase), "/") {
			segment, _, _ = strings.Cut(segment, ";")
			visible := strings.Map(func(r rune) rune {
				if unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) {
					return -1
				}
				return r
			}, segment)
			if visible == "." || visible == ".." {
				t.Fatalf("confinePath(%q) = %q has a dot segment after NFKC", rest, upstream)
			}
		}
		for _, r := range strings.TrimPrefix(upstream, passthroughBase) {
			if r > unicode.MaxASCII && strings.ContainsAny(norm.NFKC.String(string(r)), `./\%;?#`) {
				t.Fatalf("confinePath(%q) let %q through, which folds into a separator", rest, r)
			}
		}
		if u, err := url.PathUnescape(folded); err == nil && !strings.HasPrefix(path.Clean(u)+"/", passthroughBase) {
			t.Fatalf("confinePath(%q) = %q leaves after NFKC and decoding", rest, upstream)
		}
	})
}
