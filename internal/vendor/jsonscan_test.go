package vendor

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
		`{"rows":[1,]}`:              false,
		`{"rows":[{"id":1,}]}`:       false,
		`{"rows":[{"id":01}]}`:       false,
		`{"rows":["\x"]}`:            false,
	} {
		fields, err := ParseList([]byte(body))
		if (err == nil) != ok {
			t.Fatalf("%q: error %v, want ok %v", body, err, ok)
		}
		if err != nil {
			if code := err.(*Error).Code; code != "vendor_bad_response" {
				t.Fatalf("%q: code %q", body, code)
			}
			continue
		}
		if !json.Valid(fields["rows"]) {
			t.Fatalf("%q: rows %q", body, fields["rows"])
		}
	}
}
