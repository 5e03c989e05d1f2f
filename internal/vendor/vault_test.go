package vendor

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/cases"
)

func TestDecodeConnectionBareOrListed(t *testing.T) {
	bare := `{"id":"c1","key":"k1","identity":"alice","identityType":"user"}`
	listed := `{"rows":[{"id":"c0","key":"k0"},{"id":"c1","key":"k1","identity":"alice","identityType":"user"}],"total":2}`
	for _, body := range []string{bare, listed} {
		conn, err := decodeConnection([]byte(body), "c1")
		if err != nil || conn.ID != "c1" || conn.Key != "k1" || !conn.OwnedBy("alice", "user") {
			t.Fatalf("%s: %+v, %v", body, conn, err)
		}
	}
	if conn, _ := decodeConnection([]byte(`{"rows":[{"id":"c0"}]}`), "c1"); conn.ID == "c1" {
		t.Fatal("found a connection the list does not have")
	}
	if _, err := decodeConnection([]byte(`<html>`), "c1"); err == nil {
		t.Fatal("a body that is not JSON was decoded")
	}
}

// TestEncodeWithoutKeysKeepsTheRestAsWritten: leaving out the key fields
// changes nothing else of a row: numbers keep their digits (they were
// decoded as float64, so 12345678901234567890 came out
// 12345678901234567000), and every name that ends in "key" in any case
// goes, at any depth, the Kelvin sign for K included.
func TestEncodeWithoutKeysKeepsTheRestAsWritten(t *testing.T) {
	body := `{"rows":[{"id":"c1","identity":"alice","identityType":"user","key":"k1","big":12345678901234567890,"n":1.0,"e":1e3,` +
		`"SecretKEY":"s","\u212aey":"kelvin","keys":["kept"],"nested":[{"apiKey":"a","Connection_Key":"b","keyless":true}]}],"total":1,"pages":1}`
	page, err := decodeVaultPage([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got := string(page.Encode(func(Connection) bool { return true }, true))
	want := `{"pages":1,"rows":[{"big":12345678901234567890,"e":1e3,"id":"c1","identity":"alice","identityType":"user","keys":["kept"],"n":1.0,"nested":[{"keyless":true}]}],"total":1}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestDecodeVaultPageWantsARowsArray: a vault answer without a rows array
// (missing, null, not an array) or with a row that is not an object is
// vendor_bad_response; an empty array is an empty page.
func TestDecodeVaultPageWantsARowsArray(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"rows":[]}`:                       true,
		`{"rows":[{"id":"c1"},null]}`:       true,
		`{}`:                                false,
		`{"rows":null}`:                     false,
		`{"rows":{}}`:                       false,
		`{"rows":[1]}`:                      false,
		`{"rows":[{"id":1}]}`:               false,
		`{"rows":[{"active":"yes"}]}`:       false,
		`[{"rows":[]}]`:                     false,
		`{"rows":[]}x`:                      false,
		`{"rows":[{"identityType":false}]}`: false,
	} {
		_, err := decodeVaultPage([]byte(body))
		if (err == nil) != ok {
			t.Errorf("decodeVaultPage(%s): %v, want ok %v", body, err, ok)
		}
		if err != nil && err.(*Error).Code != "vendor_bad_response" {
			t.Errorf("decodeVaultPage(%s): %v", body, err)
		}
	}
}

// TestEncodeCountsTheKeptRows: when rows are left out, total and pages
// count what is kept (the vendor's counts would tell of rows the caller
// may not see); when none is, the vendor's fields stay as they were.
func TestEncodeCountsTheKeptRows(t *testing.T) {
	body := `{"rows":[{"id":"c1","identity":"alice","identityType":"user"},{"id":"c2","identity":"bob","identityType":"user"},` +
		`{"id":"c3","identity":"alice","identityType":"team"}],"total":30,"pages":10,"page":1,"requestId":"r"}`
	page, err := decodeVaultPage([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	alices := page.Encode(func(c Connection) bool { return c.OwnedBy("alice", "user") }, false)
	if want := `{"page":1,"pages":1,"requestId":"r","rows":[{"id":"c1","identity":"alice","identityType":"user"}],"total":1}`; string(alices) != want {
		t.Fatalf("kept one row of three:\n got %s\nwant %s", alices, want)
	}
	all := page.Encode(func(Connection) bool { return true }, false)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(all, &fields); err != nil || string(fields["total"]) != "30" || string(fields["pages"]) != "10" {
		t.Fatalf("kept every row: %s", all)
	}
	none := page.Encode(func(Connection) bool { return false }, true)
	if want := `{"page":1,"pages":1,"requestId":"r","rows":[],"total":0}`; string(none) != want {
		t.Fatalf("kept no row: %s", none)
	}
}

// TestConnectionUsableWhenActiveWithIDAndKey: a row without the active
// field counts as active; an inactive row, or one without an id or a key,
// is not offered.
func TestConnectionUsableWhenActiveWithIDAndKey(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		conn Connection
		want bool
	}{
		{Connection{ID: "c1", Key: "k1"}, true},
		{Connection{ID: "c1", Key: "k1", Active: &yes}, true},
		{Connection{ID: "c1", Key: "k1", Active: &no}, false},
		{Connection{ID: "c1"}, false},
		{Connection{Key: "k1"}, false},
	} {
		if got := tc.conn.Usable(); got != tc.want {
			t.Errorf("%+v: usable %v, want %v", tc.conn, got, tc.want)
		}
	}
}

// TestVaultPagePagesIsOneUnlessSaid: pages is the vendor's whole number of
// pages, 1 when it is missing, not a whole number or less than 1.
func TestVaultPagePagesIsOneUnlessSaid(t *testing.T) {
	for pages, want := range map[string]int{``: 1, `,"pages":3`: 3, `,"pages":1`: 1, `,"pages":0`: 1, `,"pages":-2`: 1, `,"pages":"3"`: 1, `,"pages":2.5`: 1, `,"pages":null`: 1} {
		page, err := decodeVaultPage([]byte(`{"rows":[]` + pages + `}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := page.Pages(); got != want {
			t.Errorf("{rows%s}: %d pages, want %d", pages, got, want)
		}
	}
}

// connectionFields are the row fields the gateway decodes, with the JSON
// type each must have (encoding/json matches names in any case).
var connectionFields = map[string]string{
	"id": "string", "key": "string", "platform": "string", "name": "string",
	"identity": "string", "identityType": "string", "active": "bool",
}

// referenceVaultPage says whether body is a vault list as the gateway must
// read it: an object with a rows array whose rows are objects (or null)
// with the fields it decodes of the right type; and returns the rows raw.
func referenceVaultPage(body []byte) ([]json.RawMessage, bool) {
	fields, ok := referenceList(body)
	if !ok {
		return nil, false
	}
	var rows []json.RawMessage
	_ = json.Unmarshal(fields["rows"], &rows)
	for _, row := range rows {
		if !referenceRow(row) {
			return nil, false
		}
	}
	return rows, true
}

// referenceRow: row is null, or an object whose members named as a Connection's
// fields (in any case) are null or of the field's kind, every one of them:
// a name given twice is judged each time, as encoding/json decodes each.
// Other members may hold any JSON, numbers no float64 holds included.
func referenceRow(row []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(row))
	dec.UseNumber()
	switch start, err := dec.Token(); {
	case err != nil:
		return false
	case start == nil:
		return true // a null row
	case start != json.Delim('{'):
		return false
	}
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			return false
		}
		var value any
		if dec.Decode(&value) != nil {
			return false
		}
		for field, kind := range connectionFields {
			if !strings.EqualFold(name.(string), field) || value == nil {
				continue
			}
			if _, isString := value.(string); kind == "string" && !isString {
				return false
			}
			if _, isBool := value.(bool); kind == "bool" && !isBool {
				return false
			}
		}
	}
	return true
}

// decodeExact decodes JSON keeping numbers as written.
func decodeExact(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return v
}

// namedLikeAKey: a field name that, case-folded, ends in "key".
func namedLikeAKey(name string) bool {
	return strings.HasSuffix(cases.Fold().String(name), "key")
}

// withoutKeyFields is v without the members named like a key, at any depth.
func withoutKeyFields(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for name, member := range v {
			if !namedLikeAKey(name) {
				out[name] = withoutKeyFields(member)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = withoutKeyFields(v[i])
		}
		return out
	}
	return v
}

// keyField is the path of a member named like a key in v, or "".
func keyField(v any, path string) string {
	switch v := v.(type) {
	case map[string]any:
		for name, member := range v {
			if namedLikeAKey(name) {
				return path + "." + name
			}
			if p := keyField(member, path+"."+name); p != "" {
				return p
			}
		}
	case []any:
		for _, member := range v {
			if p := keyField(member, path+"[]"); p != "" {
				return p
			}
		}
	}
	return ""
}

// FuzzDecodeVaultPage: decodeVaultPage accepts exactly the vault lists
// (see referenceVaultPage), and Encode writes a JSON object whose rows are
// the rows keep accepts, in order, each as the vendor wrote it (numbers as
// written) or, with withoutKeys, without any member whose case-folded name
// ends in "key", at any depth, and nothing else missing; the other fields
// are the vendor's, but total and pages, which count the kept rows when
// some are left out.
func FuzzDecodeVaultPage(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, keepMode uint8, withoutKeys bool) {
		page, err := decodeVaultPage(body)
		rows, ok := referenceVaultPage(body)
		if (err == nil) != ok {
			t.Fatalf("decodeVaultPage(%q): error %v; a vault list: %v", body, err, ok)
		}
		if err != nil {
			return
		}
		keep := func(c Connection) bool {
			switch keepMode % 4 {
			case 0:
				return true
			case 1:
				return false
			case 2:
				return c.OwnedBy("alice", "user")
			}
			h := fnv.New32a()
			h.Write([]byte(c.ID + "\x00" + c.Key))
			return h.Sum32()%2 == 0
		}
		var kept []json.RawMessage
		for i, row := range rows {
			if keep(page.Rows[i]) {
				kept = append(kept, row)
			}
		}
		out := page.Encode(keep, withoutKeys)
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(out, &fields); err != nil {
			t.Fatalf("Encode of %q wrote %q: %v", body, out, err)
		}
		var gotRows []json.RawMessage
		if err := json.Unmarshal(fields["rows"], &gotRows); err != nil || gotRows == nil {
			t.Fatalf("Encode of %q wrote rows %q", body, fields["rows"])
		}
		if len(gotRows) != len(kept) {
			t.Fatalf("Encode of %q wrote %d rows, %d kept: %s", body, len(gotRows), len(kept), out)
		}
		for i, row := range gotRows {
			got, want := decodeExact(t, row), decodeExact(t, kept[i])
			if withoutKeys {
				if p := keyField(got, "row"); p != "" {
					t.Fatalf("Encode of %q without keys keeps %s: %s", body, p, row)
				}
				want = withoutKeyFields(want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Encode of %q: row %d is %s, want it as %s", body, i, row, kept[i])
			}
		}
		vendorFields, _ := referenceList(body)
		for name, raw := range vendorFields {
			if name == "rows" || len(kept) < len(rows) && (name == "total" || name == "pages") {
				continue
			}
			if !reflect.DeepEqual(decodeExact(t, fields[name]), decodeExact(t, raw)) {
				t.Fatalf("Encode of %q changed %s to %s", body, name, fields[name])
			}
		}
		if len(fields) != len(vendorFields) && len(kept) == len(rows) {
			t.Fatalf("Encode of %q added fields: %s", body, out)
		}
		if len(kept) < len(rows) && (string(fields["pages"]) != "1" || decodeExact(t, fields["total"]) != json.Number(strconv.Itoa(len(kept)))) {
			t.Fatalf("Encode of %q kept %d of %d rows but says total %s, pages %s", body, len(kept), len(rows), fields["total"], fields["pages"])
		}
	})
}
