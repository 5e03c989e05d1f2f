package vendor

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
		if got := ThirdPartyHeader(name); got != want {
			t.Fatalf("ThirdPartyHeader(%q) = %q, want %q", name, got, want)
		}
	}
	if FromThirdParty(http.Header{"Content-Type": {"application/json"}, "X-Pica-Secret": {"x"}}) {
		t.Fatal("the vendor's own answer taken for a third party's")
	}
	if !FromThirdParty(http.Header{"Content-Type": {"application/json"}, "X-One-Passthrough-Date": {"x"}}) {
		t.Fatal("a third party's answer through One not recognised")
	}
}

func TestProvidersHaveTheirOwnDialect(t *testing.T) {
	if Providers["pica"] != Pica || Providers["one"] != One || len(Providers) != 2 {
		t.Fatalf("providers %v", Providers)
	}
	if Pica.TokenPath == One.TokenPath || Pica.SecretHeader == One.SecretHeader || Pica.CORSOrigin == One.CORSOrigin {
		t.Fatal("the two providers share a dialect")
	}
	if !Pica.WhiteLabel || One.WhiteLabel {
		t.Fatal("only Pica has the white-label flag")
	}
	for _, list := range [][]string{ConnectionKeyHeaders, ActionIDHeaders, SecretHeaders} {
		if len(list) != 2 || list[0] == list[1] {
			t.Fatalf("a header list misses a spelling: %v", list)
		}
	}
}
