package inspect

import (
	"encoding/json"
	"net/url"
	"testing"
)

// inStrings is doc carried in a JSON string levels times over, each time
// as the member x of an object.
func inStrings(doc string, levels int) string {
	for range levels {
		quoted, _ := json.Marshal(doc)
		doc = `{"x":` + string(quoted) + `}`
	}
	return doc
}

// TestPinBodyChecksJSONInStringsToMaxNestedJSONLevels: a key in JSON that
// is carried in strings is checked up to maxNestedJSON levels of strings;
// deeper, the string is not read as JSON (the bound on the work a body
// costs), so what it holds goes through.
func TestPinBodyChecksJSONInStringsToMaxNestedJSONLevels(t *testing.T) {
	ko := `{"connectionKey":"` + otherKey + `"}`
	checkBodies(t, []bodyCase{
		{name: "one level", contentType: "application/json", body: inStrings(ko, 1), status: 403, code: notOwned},
		{name: "maxNestedJSON levels", contentType: "application/json", body: inStrings(ko, maxNestedJSON), status: 403, code: notOwned},
		{name: "one level more", contentType: "application/json", body: inStrings(ko, maxNestedJSON+1)},
	})
}

// TestPinBodyRefusesAContentDispositionGoCannotParse: a part whose
// Content-Disposition Go cannot parse is refused 400, not read as having
// no name: a lenient server may still read a field name from it.
func TestPinBodyRefusesAContentDispositionGoCannotParse(t *testing.T) {
	mp := "multipart/form-data; boundary=XyZ"
	checkBodies(t, []bodyCase{
		{name: "an unterminated quote", contentType: mp, body: multipartOf("XyZ", "Content-Disposition: form-data; name=\"connectionKey\r\n\r\n"+otherKey), status: 400, code: invalid},
		{name: "no disposition type", contentType: mp, body: multipartOf("XyZ", "Content-Disposition: ; name=\"connectionKey\"\r\n\r\n"+otherKey), status: 400, code: invalid},
		{name: "no Content-Disposition", contentType: "multipart/mixed; boundary=XyZ", body: multipartOf("XyZ", "Content-Type: text/plain\r\n\r\n"+otherKey)},
	})
}

// TestFieldsNamedOnlyByIndexesAreNoKeys: form and query fields whose names
// are empty or only list indexes (0, [], [0], .) name no connection key and
// go through; next to them, a connectionKey field is still checked.
func TestFieldsNamedOnlyByIndexesAreNoKeys(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	indexes := "0=a&%5B%5D=b&%5B0%5D=c&.=d&=e"
	checkBodies(t, []bodyCase{
		{name: "indexes only", contentType: form, body: indexes},
		{name: "indexes and another key", contentType: form, body: indexes + "&connectionKey=" + url.QueryEscape(otherKey), status: 403, code: notOwned},
	})
	if err := PinQuery(indexes+"&key=1", checkedKey); err != nil {
		t.Fatalf("PinQuery(%q): %v", indexes, err)
	}
}
