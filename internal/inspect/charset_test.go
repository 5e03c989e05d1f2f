package inspect

import (
	"strings"
	"testing"
)

// TestPinBodyRefusesWhitespaceFromTheLimitOn: a body may start with up to
// MaxInspectedBody-1 bytes of whitespace (the first content byte within
// the limit), whatever follows and however it arrives; from
// MaxInspectedBody bytes on it is refused 413, also when what follows
// needs no check (peek held up to 1826816 bytes of it, as append grew its
// buffer past the limit).
func TestPinBodyRefusesWhitespaceFromTheLimitOn(t *testing.T) {
	text := "hello " + strings.Repeat("x", 100)
	checkBodies(t, []bodyCase{
		{name: "text after whitespace up to the limit", contentType: "text/plain", body: strings.Repeat(" ", MaxInspectedBody-1) + text},
		{name: "text after whitespace of the limit", contentType: "text/plain", body: strings.Repeat(" ", MaxInspectedBody) + text, status: 413, code: "body_too_large"},
		{name: "text after whitespace past the limit", contentType: "text/plain", body: strings.Repeat(" ", MaxInspectedBody+10) + text, status: 413, code: "body_too_large"},
		{name: "JSON after whitespace of the limit", contentType: "application/json", body: strings.Repeat("\n", MaxInspectedBody) + "{}", status: 413, code: "body_too_large"},
	})
}

// TestPinBodyRefusesWideJSONOfOneUnit: the shortest wide JSON, one UTF-16
// unit, is refused 415 as longer wide JSON is, in either byte order.
func TestPinBodyRefusesWideJSONOfOneUnit(t *testing.T) {
	checkBodies(t, []bodyCase{
		{name: "UTF-16BE {", contentType: "text/plain", body: "\x00{", status: 415, code: unsupported},
		{name: "UTF-16LE [", contentType: "text/plain", body: "[\x00", status: 415, code: unsupported},
		{name: "UTF-16BE \" without a type", body: "\x00\"", status: 415, code: unsupported},
	})
}
