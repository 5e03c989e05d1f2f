package vendor

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"testing"
)

func TestParsePageReadsWhatTheMergeNeeds(t *testing.T) {
	p, err := parseTokenPage([]byte(`{"rows":[ {"id":1},{"id":2} ],"total":250,"pages":3,"page":1,"requestId":77}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Rows) != `{"id":1},{"id":2}` || string(p.Total) != "250" || p.Pages != 3 || string(p.RequestID) != "77" {
		t.Fatalf("page %+v", p)
	}
	if p, _ := parseTokenPage([]byte(`{"rows":[]}`)); len(p.Rows) != 0 || p.Pages != 0 || p.Total != nil {
		t.Fatalf("empty page %+v", p)
	}
}

// TestParsePageReadsPagesAsAWholeNumber: pages counts only when written as
// a whole number; one too large for an int is the largest (and refused by
// the merge), whatever follows its digits.
func TestParsePageReadsPagesAsAWholeNumber(t *testing.T) {
	for pages, want := range map[string]int{
		"3": 3, "-1": -1, "0": 0, `"3"`: 0, "3.0": 0, "1e2": 0, "null": 0,
		"100000000000000000000": math.MaxInt, "-100000000000000000000": math.MinInt,
		"100000000000000000000.0": 0, "100000000000000000000e0": 0,
	} {
		p, err := parseTokenPage([]byte(`{"rows":[],"pages":` + pages + `}`))
		if err != nil || p.Pages != want {
			t.Errorf("pages %s: %d, %v; want %d", pages, p.Pages, err, want)
		}
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

// TestMergeTokenPagesAllocatesOnce: the merged token is written into one
// buffer sized up front, whatever the number of pages and the lengths of
// total and requestId, so the rows are copied once.
func TestMergeTokenPagesAllocatesOnce(t *testing.T) {
	whiteLabel := false
	many := make([][]byte, 40)
	for i := range many {
		many[i] = []byte(`{"id":1}`)
	}
	for name, tc := range map[string]struct {
		pages            [][]byte
		total, requestID string
	}{
		"40 pages":       {many, `40`, `"r"`},
		"a long total":   {many[:2], `123456789012345678901234567890123456789012345678901234567890`, `"r"`},
		"a long request": {many[:2], `2`, `"0b5e7f0e-9a4c-4f8e-8c1d-6a0f3e2b7c91-0b5e7f0e-9a4c"`},
	} {
		if n := testing.AllocsPerRun(10, func() {
			_ = MergeTokenPages(tc.pages, []byte(tc.total), []byte(tc.requestID), &whiteLabel)
		}); n != 1 {
			t.Errorf("%s: %v allocations, want 1", name, n)
		}
	}
}

// FuzzParseTokenPage: a page is accepted exactly when encoding/json reads
// it as an object with a rows array, and what the merge takes from it is
// what encoding/json reads: the inside of the rows array (as many rows),
// total and requestId raw, and pages as a whole number.
func FuzzParseTokenPage(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseTokenPage(body)
		fields, ok := referenceList(body)
		if (err == nil) != ok {
			t.Fatalf("parseTokenPage(%q): error %v; encoding/json reads a list: %v", body, err, ok)
		}
		if err != nil {
			return
		}
		rows := fields["rows"]
		if want := bytes.TrimSpace(rows[1 : len(rows)-1]); !bytes.Equal(p.Rows, want) {
			t.Fatalf("parseTokenPage(%q): rows %q, want %q", body, p.Rows, want)
		}
		var got, want []json.RawMessage
		if err := json.Unmarshal(append(append([]byte("["), p.Rows...), ']'), &got); err != nil {
			t.Fatalf("rows %q of %q are not an array's inside: %v", p.Rows, body, err)
		}
		if json.Unmarshal(rows, &want) != nil || len(got) != len(want) {
			t.Fatalf("%d rows, encoding/json finds %d, in %q", len(got), len(want), body)
		}
		if !bytes.Equal(p.Total, fields["total"]) || !bytes.Equal(p.RequestID, fields["requestId"]) {
			t.Fatalf("parseTokenPage(%q): total %q, requestId %q", body, p.Total, p.RequestID)
		}
		// pages: a whole number as written; one too large for an int is
		// the largest int (a vendor claiming that many pages is refused
		// by the merge), never a small one; anything else is 0.
		wantPages := 0
		if n, ok := new(big.Int).SetString(string(fields["pages"]), 10); ok {
			switch {
			case n.IsInt64():
				wantPages = int(n.Int64())
			case n.Sign() > 0:
				wantPages = math.MaxInt
			default:
				wantPages = math.MinInt
			}
		}
		if p.Pages != wantPages {
			t.Fatalf("parseTokenPage(%q): pages %d, want %d", body, p.Pages, wantPages)
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
			p, err := parseTokenPage(body)
			if err != nil {
				b.Fatal(err)
			}
			rows, last = append(rows, p.Rows), p
		}
		whiteLabel := false
		_ = MergeTokenPages(rows, []byte("300"), last.RequestID, &whiteLabel)
	}
}
