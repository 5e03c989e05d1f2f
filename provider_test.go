package caddyauthkit

import (
	"net/http"
	"testing"
)

func TestThirdPartyHeadersOfBothProviders(t *testing.T) {
	for name, want := range map[string]string{
		"X-Pica-Passthrough-Content-Type":    "Content-Type",
		"x-one-passthrough-www-authenticate": "www-authenticate",
		"X-PICA-PASSTHROUGH-X":               "X",
		"X-Pica-Passthrough-":                "",
		"X-Pica-Passthrough":                 "",
		"X-Pica-Secret":                      "",
		"Content-Type":                       "",
		"X-Other-Passthrough-Content-Type":   "",
	} {
		if got := thirdPartyHeader(name); got != want {
			t.Fatalf("thirdPartyHeader(%q) = %q, want %q", name, got, want)
		}
	}
	if fromThirdParty(http.Header{"Content-Type": {"application/json"}, "X-Pica-Secret": {"x"}}) {
		t.Fatal("the vendor's own answer taken for a third party's")
	}
	if !fromThirdParty(http.Header{"Content-Type": {"application/json"}, "X-One-Passthrough-Date": {"x"}}) {
		t.Fatal("a third party's answer through One not recognised")
	}
}

func TestProvidersHaveTheirOwnDialect(t *testing.T) {
	if providers["pica"] != pica || providers["one"] != one || len(providers) != 2 {
		t.Fatalf("providers %v", providers)
	}
	if pica.tokenPath == one.tokenPath || pica.secretHeader == one.secretHeader || pica.corsOrigin == one.corsOrigin {
		t.Fatal("the two providers share a dialect")
	}
	if !pica.whiteLabel || one.whiteLabel {
		t.Fatal("only Pica has the white-label flag")
	}
	for _, list := range [][]string{connectionKeyHeaders, actionIDHeaders, secretHeaders} {
		if len(list) != 2 || list[0] == list[1] {
			t.Fatalf("a header list misses a spelling: %v", list)
		}
	}
}
