package vendor

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestParsePageReadsWhatTheMergeNeeds(t *testing.T) {
	p, err := ParseTokenPage([]byte(`{"rows":[ {"id":1},{"id":2} ],"total":250,"pages":3,"page":1,"requestId":77}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Rows) != `{"id":1},{"id":2}` || string(p.Total) != "250" || p.Pages != 3 || string(p.RequestID) != "77" {
		t.Fatalf("page %+v", p)
	}
	if p, _ := ParseTokenPage([]byte(`{"rows":[]}`)); len(p.Rows) != 0 || p.Pages != 0 || p.Total != nil {
		t.Fatalf("empty page %+v", p)
	}
}

func TestMergeTokenPagesKeepsRowsAsSent(t *testing.T) {
	whiteLabel := true
	got := MergeTokenPages([][]byte{[]byte(`{"id":1}`), nil, []byte(`{"id":2,"x":[1, 2]}`)}, []byte(`2`), []byte(`77`), &whiteLabel)
	want := `{"rows":[{"id":1},{"id":2,"x":[1, 2]}],"page":1,"pages":1,"total":2,"requestId":77,"isWhiteLabel":true}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	for in, want := range map[string]string{
		" {\"rows\":[]}\n": `{"rows":[],"isWhiteLabel":false}`,
		"{}":               `{"isWhiteLabel":false}`,
	} {
		if got := WithWhiteLabel([]byte(in), false); string(got) != want {
			t.Fatalf("WithWhiteLabel(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzParseTokenPage: whatever the vendor sends, parsing never panics; an answer it
// accepts yields rows that form a JSON array whenever the answer was valid
// JSON, with as many rows as encoding/json finds.
func FuzzParseTokenPage(f *testing.F) {
	for _, seed := range []string{
		`{"rows":[{"id":1},{"id":2,"t":"a\"]}"}],"total":2,"pages":1,"page":1,"requestId":7}`,
		`{"rows":[],"total":0}`, `{"rows":null}`, `{}`, `{"rows":[{"id":1}`, `<html>`, `{"rows":"x"}`,
		` {"total":3 , "rows" : [ 1 , [2] , {"a":{}} ] } `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseTokenPage(body)
		if err != nil || !json.Valid(body) {
			return
		}
		var fields map[string]json.RawMessage // exact keys, as Pica writes them
		var want []json.RawMessage
		if json.Unmarshal(body, &fields) != nil || json.Unmarshal(fields["rows"], &want) != nil ||
			!bytes.Contains(body, []byte(`"rows"`)) {
			return // not a page, or rows named with escapes
		}
		var got []json.RawMessage
		if err := json.Unmarshal(append(append([]byte("["), p.Rows...), ']'), &got); err != nil {
			t.Fatalf("rows %q of %q are not an array's inside: %v", p.Rows, body, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d rows, encoding/json finds %d, in %q", len(got), len(want), body)
		}
	})
}

func BenchmarkTokenMerge(b *testing.B) {
	row := json.RawMessage(`{"id":1001,"connectionDefId":1,"type":"api","title":"Gmail","image":"https://assets.picaos.com/connectors/gmail.svg","activatedAt":1735689600000,"secretId":null,"clientSecretDisplay":null,"clientIdDisplay":null,"scopes":null,"environment":"test","guide":null,"createdAt":1735689600000,"tags":[],"active":true}`)
	var pages [][]byte
	for p := 1; p <= 3; p++ {
		rows := make([]json.RawMessage, 100)
		for i := range rows {
			rows[i] = row
		}
		body, _ := json.Marshal(map[string]any{"rows": rows, "total": 300, "pages": 3, "page": p, "requestId": p})
		pages = append(pages, body)
	}
	b.SetBytes(int64(len(pages[0]) * 3))
	b.ReportAllocs()
	for b.Loop() {
		var rows [][]byte
		var last TokenPage
		for _, body := range pages {
			p, err := ParseTokenPage(body)
			if err != nil {
				b.Fatal(err)
			}
			rows, last = append(rows, p.Rows), p
		}
		whiteLabel := false
		_ = MergeTokenPages(rows, []byte("300"), last.RequestID, &whiteLabel)
	}
}
