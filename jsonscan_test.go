package caddyauthkit

import (
	"encoding/json"
	"testing"
)

func TestObjectFieldsFindsTopLevelFieldsRaw(t *testing.T) {
	for body, want := range map[string]map[string]string{
		`{}`:          {},
		" { } \n":     {},
		`{"a":1}`:     {"a": "1"},
		`{"a":"x,y"}`: {"a": `"x,y"`},
		` {"rows" : [ {"id":1}, [2] ] , "t":true,"n":null,"s":"a\"}b","o":{"x":{"y":[]}},"f":-1.5e3 } `: {
			"rows": `[ {"id":1}, [2] ]`, "t": "true", "n": "null", "s": `"a\"}b"`, "o": `{"x":{"y":[]}}`, "f": "-1.5e3",
		},
	} {
		got, ok := objectFields([]byte(body))
		if !ok {
			t.Fatalf("%q refused", body)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d fields, want %d: %q", body, len(got), len(want), got)
		}
		for k, v := range want {
			if string(got[k]) != v {
				t.Fatalf("%q: field %s is %q, want %q", body, k, got[k], v)
			}
		}
	}
}

func TestObjectFieldsRefusesWhatIsNotAnObject(t *testing.T) {
	for _, body := range []string{
		``, ` `, `[]`, `"x"`, `1`, `null`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`,
		`{"a":1}x`, `{"a":1}{}`, `{} x`, `{a:1}`, `{"a":[1}`, `{"a":{"b":1}`, `{"a":"x}`, `{"a":"x\"}`,
		`{"a":1]`, `{"a":1,"b"`, `{"a" 1}`, `{,}`, `{"rows":[{"id":1}`,
	} {
		if fields, ok := objectFields([]byte(body)); ok {
			t.Fatalf("%q accepted as %q", body, fields)
		}
	}
}

func TestParseListWantsARowsArray(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"rows":[]}`:                true,
		`{"rows":[{"id":1}],"x":2}`:  true,
		`{"rows": [ ] }`:             true,
		`{}`:                         false,
		`{"rows":{}}`:                false,
		`{"rows":"[]"}`:              false,
		`{"rows":null}`:              false,
		`{"rows":1}`:                 false,
		`{"error":"x","rows2":[]}`:   false,
		`[{"rows":[]}]`:              false,
		`{"data":{"rows":[]}}`:       false,
		`{"rows":[],"pages":3}trail`: false,
	} {
		fields, err := parseList([]byte(body))
		if (err == nil) != ok {
			t.Fatalf("%q: error %v, want ok %v", body, err, ok)
		}
		if err != nil {
			if code := err.(*apiError).Code; code != "vendor_bad_response" {
				t.Fatalf("%q: code %q", body, code)
			}
			continue
		}
		if !json.Valid(fields["rows"]) {
			t.Fatalf("%q: rows %q", body, fields["rows"])
		}
	}
}

func TestParsePageReadsWhatTheMergeNeeds(t *testing.T) {
	p, err := parsePage([]byte(`{"rows":[ {"id":1},{"id":2} ],"total":250,"pages":3,"page":1,"requestId":77}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(p.rows) != `{"id":1},{"id":2}` || string(p.total) != "250" || p.pages != 3 || string(p.requestID) != "77" {
		t.Fatalf("page %+v", p)
	}
	if p, _ := parsePage([]byte(`{"rows":[]}`)); len(p.rows) != 0 || p.pages != 0 || p.total != nil {
		t.Fatalf("empty page %+v", p)
	}
}
