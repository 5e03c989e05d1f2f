package vendor

import (
	"bytes"
	"encoding/json"
	"strings"
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
		`{"rows":[tru]}`:             false,
		`{"rows":[1.]}`:              false,
		`{"rows":[1e]}`:              false,
		`{"rows":[-]}`:               false,
		`{"rows":[.5]}`:              false,
		`{"rows":["\u12"]}`:          false,
		"{\"rows\":[\"a\tb\"]}":      false,
		`{"rows":[{"a" 1}]}`:         false,
		`{"rows":[1.5e+3,-0,"\u00e9\/",true,false,null,{"a":[{}]}]}`: true,
	} {
		fields, err := parseList([]byte(body))
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

// TestParseListNestsAsDeepAsEncodingJSON: 10000 nested arrays are JSON to
// encoding/json, one more is not; the scanner agrees.
func TestParseListNestsAsDeepAsEncodingJSON(t *testing.T) {
	for depth, valid := range map[int]bool{maxDepth: true, maxDepth + 1: false} {
		arrays := depth - 1 // inside the object
		body := []byte(`{"rows":` + strings.Repeat("[", arrays) + strings.Repeat("]", arrays) + `}`)
		if json.Valid(body) != valid {
			t.Fatalf("depth %d: encoding/json's limit moved", depth)
		}
		if _, err := parseList(body); (err == nil) != valid {
			t.Fatalf("depth %d: error %v, want valid %v", depth, err, valid)
		}
	}
}

// TestParseListReadsNamesAsJSONDoes: a field's name is what JSON parsers
// read, escapes decoded, so a rows array written "r\u006fws" is the rows,
// and a second rows that is not an array is refused, not hidden behind the
// first (FuzzParseList found names that the scanner kept raw).
func TestParseListReadsNamesAsJSONDoes(t *testing.T) {
	for body, rows := range map[string]string{
		`{"r\u006fws":[1]}`:              "[1]",
		`{"\u0072ows":[1],"rows":[2]}`:   "[2]",
		`{"rows":[1],"r\u006Fws":[2]}`:   "[2]",
		`{"rows":{},"ro\u0077s":[3]}`:    "[3]",
		"{\"\xe4\":0,\"rows\":[4]}":      "[4]",
		`{"ro\"ws":1,"rows":[5]}`:        "[5]",
		`{"rows":[6],"rows\u0000":7}`:    "[6]",
		`{"rows":[7],"\ud800":{"a":[]}}`: "[7]",
	} {
		fields, err := parseList([]byte(body))
		if err != nil || string(fields["rows"]) != rows {
			t.Fatalf("parseList(%s): rows %s, %v; want %s", body, fields["rows"], err, rows)
		}
	}
	for _, body := range []string{`{"rows":[1],"r\u006fws":{}}`, `{"rows":[1],"\u0072\u006f\u0077\u0073":null}`, `{"r\u006fws":[1],"rows":"x"}`} {
		if fields, err := parseList([]byte(body)); err == nil {
			t.Fatalf("parseList(%s) accepted, rows %s", body, fields["rows"])
		}
	}
	p, err := parseTokenPage([]byte(`{"rows":[],"tot\u0061l":5,"p\u0061ges":2,"requestI\u0064":"r"}`))
	if err != nil || string(p.Total) != "5" || p.Pages != 2 || string(p.RequestID) != `"r"` {
		t.Fatalf("escaped names: %+v, %v", p, err)
	}
}

// referenceList reads body as encoding/json does: the fields of a JSON
// object (names unescaped, the last of duplicates kept), and whether it is
// a list answer, an object with a rows array.
func referenceList(body []byte) (map[string]json.RawMessage, bool) {
	var fields map[string]json.RawMessage
	if !json.Valid(body) || json.Unmarshal(body, &fields) != nil || fields == nil {
		return nil, false
	}
	var rows []json.RawMessage
	if !bytes.HasPrefix(fields["rows"], []byte("[")) || json.Unmarshal(fields["rows"], &rows) != nil {
		return nil, false
	}
	return fields, true
}

// FuzzParseList: parseList accepts exactly the bodies encoding/json reads
// as an object with a rows array, and finds the same fields with the same
// raw values (so the rows the gateway relays are the rows any JSON parser
// reads); what it refuses is vendor_bad_response.
func FuzzParseList(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := parseList(body)
		want, ok := referenceList(body)
		if (err == nil) != ok {
			t.Fatalf("parseList(%q): error %v; encoding/json reads it as a list: %v", body, err, ok)
		}
		if err != nil {
			if e, isErr := err.(*Error); !isErr || e.Code != "vendor_bad_response" || e.Status != 502 {
				t.Fatalf("parseList(%q): %v, not vendor_bad_response", body, err)
			}
			return
		}
		if len(got) != len(want) {
			t.Fatalf("parseList(%q) finds %d fields, encoding/json %d: %q", body, len(got), len(want), got)
		}
		for name, raw := range want {
			if v, found := got[name]; !found || !bytes.Equal(v, raw) {
				t.Fatalf("parseList(%q): field %q is %q, encoding/json reads %q", body, name, v, raw)
			}
		}
	})
}

// TestObjectFieldsAgreesWithEncodingJSON: on bodies crafted at each of the
// scanner's decisions, valid and not, and on every prefix of each (a body
// cut short anywhere), objectFields accepts exactly what encoding/json
// reads as an object and finds the same raw fields. Each body is its own
// allocation, so a read past its end panics instead of passing unseen.
func TestObjectFieldsAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range []string{
		// Valid: every kind of value, escape, number and whitespace.
		`{"a":"x y","b":"\"\\\/\b\f\n\r\t\u09aA\ufFfF\u0000","c":[1,-0,0.5e-3,1E+2,-12.5E-10,10,9,0,true,false,null],"d":{"e":{},"f":[]},"g":[[],{}],"h":{"i":[{"j":null,"k":"v"}]}}`,
		" \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n\"b\" \t\r\n: \t\r\n2 \t\r\n} \t\r\n] \t\r\n, \t\r\n\"c\":{ \t\r\n} \t\r\n} \t\r\n",
		`{"a":0}`, `{"a":9}`, `{"a":123}`, `{"a":-0.0e0}`, `{"a":1e5}`, `{"a":"é"}`, "{\"a\":\"\xff\xfe\",\"\xff\":1}",
		`{"a":1,"a":2}`, `{"\u0061":1,"a\"b":2,"a\\":3}`, `{"a":[[[[]]]],"b":{"c":{"d":{}}}}`,
		// Containers of the wrong shape, as a field's value.
		`{"a":{1:2}}`, `{"a":{"b"}}`, `{"a":{"b" 1}}`, `{"a":{"b":1,}}`, `{"a":{"b":1 "c":2}}`, `{"a":{,}}`,
		`{"a":[1 2]}`, `{"a":[1,]}`, `{"a":[,]}`, `{"a":[}`, `{"a":{]}`, `{"a":[1}`, `{"a":{"b":1]}`, `{"a":[{"b":[1}]}`,
		// Strings.
		"{\"a\":\"x\ty\"}", "{\"a\x01\":1}", "{\"a\":\"\x1f\"}", `{"a":"\x"}`, `{"a\q":1}`, `{"a":"\U0041"}`,
		`{"a":"\u12G4"}`, `{"a":"\u123"}`, `{"a":"\u00g0"}`, `{"a":"\u00G0"}`, `{"a":"\u00/0"}`, `{"a":"\u00:0"}`,
		"{\"a\":\"\\u00`0\"}", `{"a":"\u00@0"}`, `{"a":"\ud800"}`, `{"a":'x'}`,
		// Numbers.
		`{"a":-}`, `{"a":-x}`, `{"a":01}`, `{"a":-01}`, `{"a":00}`, `{"a":1.}`, `{"a":1.e5}`, `{"a":.5}`, `{"a":1e}`,
		`{"a":1e+}`, `{"a":1E-}`, `{"a":1ee5}`, `{"a":+1}`, `{"a":1.5.5}`, `{"a":0x10}`, `{"a":1e5.5}`, `{"a":--1}`,
		// Literals.
		`{"a":tru}`, `{"a":nul}`, `{"a":fals}`, `{"a":falsey}`, `{"a":True}`, `{"a":nulL}`, `{"a":undefined}`, `{"a":/}`,
		// Objects of the wrong shape, and what is not an object.
		`{"a" 1}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":1}x`, `{"a":1}}`, `{"a":1},`, `{1:1}`, `{,}`, "{\f}", "{\v\"a\":1}",
		`[{"a":1}]`, `"x"`, `1`, `null`, `true`,
	} {
		for n := len(body); n >= 0; n-- {
			checkObjectFields(t, body[:n])
		}
	}
}

// checkObjectFields fails when objectFields reads body otherwise than
// encoding/json does.
func checkObjectFields(t *testing.T, body string) {
	t.Helper()
	b := make([]byte, len(body)) // no capacity past its end
	copy(b, body)
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("objectFields(%q) panics: %v", body, r)
		}
	}()
	got, ok := objectFields(b)
	var want map[string]json.RawMessage
	if wantOK := json.Valid(b) && json.Unmarshal(b, &want) == nil && want != nil; ok != wantOK {
		t.Fatalf("objectFields(%q) accepts: %v; encoding/json reads an object: %v", body, ok, wantOK)
	}
	if !ok {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("objectFields(%q) finds %d fields, encoding/json %d: %q", body, len(got), len(want), got)
	}
	for name, raw := range want {
		if v, found := got[name]; !found || !bytes.Equal(v, raw) {
			t.Fatalf("objectFields(%q): field %q is %q, encoding/json reads %q", body, name, v, raw)
		}
	}
}
