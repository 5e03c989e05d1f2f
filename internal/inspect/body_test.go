package inspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding"
	textunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// checkedKey is the connection key the headers proved, in these tests.
const checkedKey = "test::gmail::default::0123456789abcdef"

// pin runs PinBody on a request with that body, content type and content
// encoding, the body arriving in reads of at most chunk bytes (0: as
// http.Request bodies of that size usually do, in one read), and returns
// its refusal (nil when it lets the body through) and the body it forwards.
func pin(t testing.TB, contentType, contentEncoding string, body []byte, chunk int) (*Refusal, []byte) {
	t.Helper()
	var reader io.Reader = bytes.NewReader(body)
	if chunk > 0 {
		reader = &chunkReader{body, chunk}
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/passthrough/x", reader)
	r.ContentLength = int64(len(body))
	if contentType != "" {
		r.Header["Content-Type"] = contentTypes(contentType)
	}
	if contentEncoding != "" {
		r.Header.Set("Content-Encoding", contentEncoding)
	}
	err := PinBody(r, checkedKey)
	if err != nil {
		var refusal *Refusal
		if !errors.As(err, &refusal) {
			t.Fatalf("PinBody: %v, not a Refusal", err)
		}
		return refusal, nil
	}
	forwarded, readErr := io.ReadAll(r.Body)
	if readErr != nil {
		t.Fatalf("reading the forwarded body: %v", readErr)
	}
	if r.ContentLength != int64(len(body)) {
		t.Fatalf("PinBody left Content-Length %d for a body of %d bytes", r.ContentLength, len(body))
	}
	return nil, forwarded
}

// contentTypes are the Content-Type header values a test's content type
// stands for: one per line, as a client may send the header more than once.
func contentTypes(contentType string) []string {
	return strings.Split(contentType, "\n")
}

// chunkReader hands out its bytes at most n at a time, as a slow client's
// body arrives.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// otherKey is a connection key that is not the checked one.
const otherKey = "test::gmail::default::fedcba9876543210"

// multipartOf writes a multipart body of those parts (each its headers, a
// blank line and its content) with that boundary.
func multipartOf(boundary string, parts ...string) string {
	var b strings.Builder
	for _, part := range parts {
		b.WriteString("--" + boundary + "\r\n" + part + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

// field is a form-data part named name (as written, quoted) holding value.
func field(name, value string) string {
	return "Content-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value
}

// wide encodes s in UTF-16 or UTF-32, with or without a byte order mark.
func wide(t *testing.T, s string, width int, bigEndian, bom bool) []byte {
	t.Helper()
	var enc encoding.Encoding
	switch {
	case width == 2:
		order, mark := textunicode.LittleEndian, textunicode.IgnoreBOM
		if bigEndian {
			order = textunicode.BigEndian
		}
		if bom {
			mark = textunicode.UseBOM
		}
		enc = textunicode.UTF16(order, mark)
	default:
		order, mark := utf32.LittleEndian, utf32.IgnoreBOM
		if bigEndian {
			order = utf32.BigEndian
		}
		if bom {
			mark = utf32.UseBOM
		}
		enc = utf32.UTF32(order, mark)
	}
	b, err := enc.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bodyCase is a body PinBody must let through (status 0) or refuse with
// that status and code.
type bodyCase struct {
	name, contentType, contentEncoding, body string
	status                                   int
	code                                     string
}

// checkBodies runs PinBody on each case, in one read and byte by byte
// (in reads of 1000 bytes beyond 64 KiB: the time a trickle takes is
// TestPinBodyTakesLinearTimeOnATrickle's), and checks its answer and that
// what it lets through is forwarded as sent.
func checkBodies(t *testing.T, cases []bodyCase) {
	t.Helper()
	for _, c := range cases {
		small := 1
		if len(c.body) > 1<<16 {
			small = 1000
		}
		for _, chunk := range []int{0, small} {
			refusal, forwarded := pin(t, c.contentType, c.contentEncoding, []byte(c.body), chunk)
			switch {
			case c.status == 0 && refusal != nil:
				t.Errorf("%s: refused %d %s (%s), want it let through", c.name, refusal.Status, refusal.Code, refusal.Message)
			case c.status == 0 && string(forwarded) != c.body:
				t.Errorf("%s: forwarded %q, sent %q", c.name, forwarded, c.body)
			case c.status != 0 && refusal == nil:
				t.Errorf("%s: let through, want %d %s", c.name, c.status, c.code)
			case c.status != 0 && (refusal.Status != c.status || c.code != "" && refusal.Code != c.code):
				t.Errorf("%s: refused %d %s, want %d %s", c.name, refusal.Status, refusal.Code, c.status, c.code)
			default:
				continue
			}
			break
		}
	}
}

const (
	notOwned    = "connection_not_owned"
	ambiguous   = "body_ambiguous"
	invalid     = "body_invalid"
	unsupported = "body_encoding_unsupported"
)

func TestPinBodyJSON(t *testing.T) {
	ok := `{"connectionKey":"` + checkedKey + `"}`
	ko := `{"connectionKey":"` + otherKey + `"}`
	checkBodies(t, []bodyCase{
		{name: "the checked key", contentType: "application/json", body: ok},
		{name: "no key", contentType: "application/json", body: `{"to":"a@b.c","n":[1,2,{"x":null}]}`},
		{name: "another key", contentType: "application/json", body: ko, status: 403, code: notOwned},
		{name: "nested", contentType: "application/json", body: `{"input":{"list":[{"a":1},{"connectionKey":"` + otherKey + `"}]}}`, status: 403, code: notOwned},
		{name: "nested, the checked key", contentType: "application/json", body: `{"input":{"list":[{"connectionKey":"` + checkedKey + `"}]}}`},
		{name: "an escaped name", contentType: "application/json", body: `{"connection\u004bey":"` + otherKey + `"}`, status: 403, code: notOwned},
		{name: "an escaped value", contentType: "application/json", body: `{"connectionKey":"test::gmail::default::0123456789abcde\u0066"}`},
		{name: "duplicated, both the checked key", contentType: "application/json", body: `{"connectionKey":"` + checkedKey + `","connectionKey":"` + checkedKey + `"}`, status: 400, code: ambiguous},
		{name: "duplicated, the other last", contentType: "application/json", body: `{"connectionKey":"` + checkedKey + `","connectionKey":"` + otherKey + `"}`, status: 403, code: notOwned},
		{name: "in one object each", contentType: "application/json", body: `[` + ok + `,` + ok + `]`},
		{name: "upper case", contentType: "application/json", body: `{"CONNECTIONKEY":"` + otherKey + `"}`, status: 403, code: notOwned},
		{name: "snake case", contentType: "application/json", body: `{"connection_key":"` + otherKey + `"}`, status: 403, code: notOwned},
		{name: "the Kelvin sign for K", contentType: "application/json", body: `{"connection\u212aey":"` + otherKey + `"}`, status: 403, code: notOwned},
		{name: "a zero width space in the name", contentType: "application/json", body: `{"connection\u200bKey":"` + otherKey + `"}`, status: 403, code: notOwned},
		{name: "not a string", contentType: "application/json", body: `{"connectionKey":["` + checkedKey + `"]}`, status: 403, code: notOwned},
		{name: "null", contentType: "application/json", body: `{"connectionKey":null}`, status: 403, code: notOwned},
		{name: "JSON in a string", contentType: "application/json", body: `{"body":"{\"connectionKey\":\"` + otherKey + `\"}"}`, status: 403, code: notOwned},
		{name: "JSON in a string in a string", contentType: "application/json", body: `{"a":"{\"b\":\"[{\\\"connectionKey\\\":\\\"` + otherKey + `\\\"}]\"}"}`, status: 403, code: notOwned},
		{name: "a string that only looks like JSON", contentType: "application/json", body: `{"note":"{not json"}`},
		{name: "NDJSON", contentType: "application/x-ndjson", body: ok + "\n" + ko + "\n", status: 403, code: notOwned},
		{name: "NDJSON, a scalar first", contentType: "application/x-ndjson", body: "1\n" + ko, status: 403, code: notOwned},
		{name: "JSON lines, a string first", contentType: "application/jsonl", body: "\"x\"\n" + ko, status: 403, code: notOwned},
		{name: "a JSON type that Go cannot parse, a scalar first", contentType: "application/x-ndjson, text/plain", body: "1\n" + ko, status: 403, code: notOwned},
		{name: "json as the type, not the subtype, a scalar first", contentType: "json/", body: "0" + ko, status: 403, code: notOwned},
		{name: "JSON text sequence", contentType: "application/json-seq", body: "\x1e" + ko, status: 400, code: invalid},
		{name: "a stream of the checked key", contentType: "application/x-ndjson", body: ok + "\n" + ok + "\n"},
		{name: "by content, no type", body: " \r\n\t" + ko, status: 403, code: notOwned},
		{name: "by content, text/plain", contentType: "text/plain", body: "[" + ko + "]", status: 403, code: notOwned},
		{name: "by content, said to be a form", contentType: "application/x-www-form-urlencoded", body: ko, status: 403, code: notOwned},
		{name: "after a UTF-8 BOM", contentType: "text/plain", body: "\xef\xbb\xbf" + ko, status: 403, code: notOwned},
		{name: "not JSON", contentType: "application/json", body: `{"connectionKey":"` + checkedKey + `"`, status: 400, code: invalid},
		{name: "JSON then garbage", contentType: "application/json", body: ok + "}", status: 400, code: invalid},
		{name: "a JSON string", contentType: "application/json", body: `"` + otherKey + `"`},
		{name: "charset utf-8", contentType: "application/json; charset=UTF-8", body: ok},
		{name: "charset utf-16", contentType: "application/json; charset=utf-16", body: ok, status: 415, code: unsupported},
		{name: "charset latin1", contentType: "application/json; charset=iso-8859-1", body: ok, status: 415, code: unsupported},
	})
}

func TestPinBodyForms(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	q := url.QueryEscape
	checkBodies(t, []bodyCase{
		{name: "the checked key", contentType: form, body: "connectionKey=" + q(checkedKey) + "&to=a%40b.c"},
		{name: "no key", contentType: form, body: "to=a%40b.c&n=1"},
		{name: "another key", contentType: form, body: "to=x&connectionKey=" + q(otherKey), status: 403, code: notOwned},
		{name: "encoded name", contentType: form, body: "connection%4Bey=" + q(otherKey), status: 403, code: notOwned},
		{name: "input[connectionKey]", contentType: form, body: "input%5BconnectionKey%5D=" + q(otherKey), status: 403, code: notOwned},
		{name: "input.connectionKey", contentType: form, body: "input.connectionKey=" + q(otherKey), status: 403, code: notOwned},
		{name: "connectionKey[]", contentType: form, body: "connectionKey[]=" + q(otherKey), status: 403, code: notOwned},
		{name: "connectionKey[0]", contentType: form, body: "connectionKey%5B0%5D=" + q(otherKey), status: 403, code: notOwned},
		{name: "connectionKey.0", contentType: form, body: "input.connectionKey.0=" + q(otherKey), status: 403, code: notOwned},
		{name: "connectionKey[a] is an object", contentType: form, body: "connectionKey[a]=" + q(otherKey)},
		{name: "upper and snake case", contentType: form, body: "CONNECTION_KEY=" + q(otherKey), status: 403, code: notOwned},
		{name: "twice", contentType: form, body: "connectionKey=" + q(checkedKey) + "&connectionKey=" + q(checkedKey), status: 400, code: ambiguous},
		{name: "malformed escape", contentType: form, body: "a=%zz&connectionKey=" + q(otherKey), status: 400, code: invalid},
		{name: "charset utf-16", contentType: form + "; charset=utf-16", body: "a=b", status: 415, code: unsupported},
		{name: "a zero byte among the first four", contentType: form, body: "a\x00=b", status: 415, code: unsupported},
		{name: "a zero byte first", contentType: form, body: "\x00a=b", status: 415, code: unsupported},
		{name: "a zero byte later", contentType: form, body: "0000\x00"},
	})
}

func TestPinBodyMultipart(t *testing.T) {
	mp := "multipart/form-data; boundary=XyZ"
	body := func(parts ...string) string { return multipartOf("XyZ", parts...) }
	jsonPart := func(json string) string {
		return "Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n" + json
	}
	checkBodies(t, []bodyCase{
		{name: "the checked key and a file", contentType: mp, body: body(field("connectionKey", checkedKey),
			"Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\x00\x00")},
		{name: "another key", contentType: mp, body: body(field("to", "x"), field("connectionKey", otherKey)), status: 403, code: notOwned},
		{name: "input[connectionKey]", contentType: mp, body: body(field("input[connectionKey]", otherKey)), status: 403, code: notOwned},
		{name: "connectionKey[0]", contentType: mp, body: body(field("connectionKey[0]", otherKey)), status: 403, code: notOwned},
		{name: "twice", contentType: mp, body: body(field("connectionKey", checkedKey), field("connectionKey", checkedKey)), status: 400, code: ambiguous},
		{name: "RFC 2231 name*=", contentType: mp, body: body("Content-Disposition: form-data; name*=UTF-8''connection%4Bey\r\n\r\n" + otherKey), status: 403, code: notOwned},
		{name: "RFC 2231 name*= that Go does not decode", contentType: mp, body: body("Content-Disposition: form-data; name*=connection%4Bey\r\n\r\n" + otherKey), status: 400, code: invalid},
		{name: "name and name*= disagree", contentType: mp, body: body("Content-Disposition: form-data; name=\"connectionKey\"; name*=UTF-8''other\r\n\r\n" + otherKey), status: 400, code: ambiguous},
		{name: "RFC 2231 continuations", contentType: mp, body: body("Content-Disposition: form-data; name*0=\"connection\"; name*1=\"Key\"\r\n\r\n" + otherKey), status: 400, code: ambiguous},
		{name: "two Content-Disposition", contentType: mp, body: body("Content-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"connectionKey\"\r\n\r\n" + otherKey), status: 400, code: ambiguous},
		{name: "two Content-Type", contentType: mp, body: body("Content-Disposition: form-data; name=\"a\"\r\nContent-Type: text/plain\r\nContent-Type: application/x-ndjson\r\n\r\n1"), status: 400, code: ambiguous},
		{name: "a JSON part naming another key", contentType: mp, body: body(jsonPart(`{"connectionKey":"` + otherKey + `"}`)), status: 403, code: notOwned},
		{name: "a JSON part naming the checked key", contentType: mp, body: body(jsonPart(`{"connectionKey":"` + checkedKey + `"}`))},
		{name: "a part that is JSON by content", contentType: mp, body: body(field("meta", ` {"connectionKey":"`+otherKey+`"}`)), status: 403, code: notOwned},
		{name: "a form part", contentType: mp, body: body("Content-Disposition: form-data; name=\"f\"\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nconnectionKey=" + otherKey), status: 403, code: notOwned},
		{name: "nested multipart", contentType: mp, body: body("Content-Disposition: form-data; name=\"inner\"\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n" +
			multipartOf("in", field("connectionKey", otherKey))), status: 403, code: notOwned},
		{name: "nested multipart, the checked key", contentType: mp, body: body("Content-Disposition: form-data; name=\"inner\"\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n" +
			multipartOf("in", field("connectionKey", checkedKey)))},
		{name: "nested twice", contentType: mp, body: body("Content-Type: multipart/mixed; boundary=in\r\n\r\n" +
			multipartOf("in", "Content-Type: multipart/mixed; boundary=in2\r\n\r\n"+multipartOf("in2", field("a", "b")))), status: 415, code: unsupported},
		{name: "base64 part", contentType: mp, body: body("Content-Disposition: form-data; name=\"connectionKey\"\r\nContent-Transfer-Encoding: base64\r\n\r\ndGVzdA=="), status: 415, code: unsupported},
		{name: "quoted-printable part", contentType: mp, body: body("Content-Disposition: form-data; name=\"m\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{\"connection=4Bey\":1}"), status: 415, code: unsupported},
		{name: "8bit part", contentType: mp, body: body("Content-Disposition: form-data; name=\"m\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\nx")},
		{name: "gzip part", contentType: mp, body: body("Content-Disposition: form-data; name=\"m\"\r\nContent-Encoding: gzip\r\n\r\nx"), status: 415, code: unsupported},
		{name: "a UTF-16 part", contentType: mp, body: body("Content-Disposition: form-data; name=\"m\"\r\nContent-Type: application/json; charset=utf-16\r\n\r\n{}"), status: 415, code: unsupported},
		{name: "a preamble", contentType: mp, body: "preamble\r\n" + body(field("a", "b")), status: 400, code: invalid},
		{name: "an epilogue", contentType: mp, body: body(field("a", "b")) + "epilogue", status: 400, code: invalid},
		{name: "an epilogue of line breaks", contentType: mp, body: body(field("a", "b")) + "\r\n", status: 400, code: invalid},
		{name: "no line break after the close delimiter", contentType: mp, body: strings.TrimSuffix(body(field("a", "b")), "\r\n")},
		{name: "no closing delimiter", contentType: mp, body: strings.TrimSuffix(body(field("a", "b")), "--\r\n"), status: 400, code: invalid},
		{name: "no boundary", contentType: "multipart/form-data", body: body(field("a", "b")), status: 400, code: invalid},
		{name: "an empty boundary", contentType: "multipart/form-data; boundary=", body: body(field("a", "b")), status: 400, code: invalid},
		{name: "an invalid boundary parameter", contentType: "multipart/form-data; boundary=\"XyZ", body: body(field("a", "b")), status: 400, code: invalid},
		{name: "another boundary than the body's", contentType: "multipart/form-data; boundary=Other", body: body(field("a", "b")), status: 400, code: invalid},
		{name: "charset utf-16", contentType: mp + "; charset=utf-16", body: body(field("a", "b")), status: 415, code: unsupported},
		{name: "multipart/mixed with a JSON part", contentType: "multipart/mixed; boundary=XyZ", body: body("Content-Type: application/json\r\n\r\n{\"connectionKey\":\"" + otherKey + "\"}"), status: 403, code: notOwned},
	})
}

// TestPinBodyRefusesWideJSON: JSON in UTF-16 or UTF-32, in either byte
// order, with or without a byte order mark, with or without whitespace
// (wide too) before it, is refused 415 whatever its Content-Type, also
// when the whitespace is longer than one read brings (it was judged on the
// first 64 bytes when the body came in small reads).
func TestPinBodyRefusesWideJSON(t *testing.T) {
	ko := `{"connectionKey":"` + otherKey + `"}`
	for _, width := range []int{2, 4} {
		for _, bigEndian := range []bool{true, false} {
			for _, bom := range []bool{true, false} {
				for _, lead := range []string{"", " \r\n\t", strings.Repeat(" ", 300)} {
					for _, contentType := range []string{"application/json", "", "text/plain"} {
						b := wide(t, lead+ko, width, bigEndian, bom)
						name := fmt.Sprintf("UTF-%d big-endian=%v BOM=%v, %d bytes of whitespace, type %q", 8*width, bigEndian, bom, len(lead), contentType)
						checkBodies(t, []bodyCase{{name: name, contentType: contentType, body: string(b), status: 415, code: unsupported}})
					}
				}
			}
		}
	}
	// Wide text that is not JSON needs no check (with a byte order mark it
	// is refused all the same: it could be JSON further on).
	checkBodies(t, []bodyCase{
		{name: "UTF-16 text", contentType: "text/plain; charset=utf-16le", body: string(wide(t, "hello {}", 2, false, false))},
		{name: "UTF-32 text", contentType: "text/plain", body: string(wide(t, " \n hello {}", 4, true, false))},
		{name: "UTF-16 text with a BOM", contentType: "text/plain", body: string(wide(t, "hello", 2, true, true)), status: 415},
	})
}

func TestPinBodyRefusesCompressedBodies(t *testing.T) {
	for _, coding := range []string{"gzip", "br", "deflate", "zstd", "GZIP", "identity, gzip", "x-custom"} {
		checkBodies(t, []bodyCase{
			{name: coding + " JSON", contentType: "application/json", contentEncoding: coding, body: `{}`, status: 415, code: unsupported},
			{name: coding + " PNG", contentType: "image/png", contentEncoding: coding, body: "\x89PNG", status: 415, code: unsupported},
		})
	}
	checkBodies(t, []bodyCase{{name: "identity", contentType: "application/json", contentEncoding: "identity", body: `{"connectionKey":"` + checkedKey + `"}`}})
}

func TestPinBodyRefusesTwoContentTypes(t *testing.T) {
	checkBodies(t, []bodyCase{{name: "text/plain and NDJSON", contentType: "text/plain\napplication/x-ndjson",
		body: "1\n{\"connectionKey\":\"" + otherKey + "\"}", status: 400, code: ambiguous}})
}

// TestPinBodyRefusesTooLargeBodies: a body that needs checking is read up
// to MaxInspectedBody bytes and refused 413 beyond.
func TestPinBodyRefusesTooLargeBodies(t *testing.T) {
	pad := func(n int) string { return `{"pad":"` + strings.Repeat("x", n-len(`{"pad":""}`)) + `"}` }
	checkBodies(t, []bodyCase{
		{name: "JSON at the limit", contentType: "application/json", body: pad(MaxInspectedBody)},
		{name: "JSON over it", contentType: "application/json", body: pad(MaxInspectedBody + 1), status: 413, code: "body_too_large"},
		{name: "a form over it", contentType: "application/x-www-form-urlencoded", body: "a=" + strings.Repeat("x", MaxInspectedBody), status: 413},
		{name: "whitespace over it", contentType: "text/plain", body: strings.Repeat(" ", MaxInspectedBody+1) + "{}", status: 413},
	})
}

// TestPinBodyReadsNoMoreOfATooLargeBodyThanTheLimit: a body refused as
// too large (JSON past the limit, or whitespace as long as it) costs at
// most MaxInspectedBody+1 bytes read and held, however much is sent.
func TestPinBodyReadsNoMoreOfATooLargeBodyThanTheLimit(t *testing.T) {
	for contentType, body := range map[string]string{
		"application/json": `{"pad":"` + strings.Repeat("x", 3*MaxInspectedBody) + `"}`,
		"text/plain":       strings.Repeat(" ", 3*MaxInspectedBody) + "{}",
	} {
		client := &countingReader{r: strings.NewReader(body)}
		r := httptest.NewRequest(http.MethodPost, "/v1/passthrough/x", nil)
		r.Body, r.ContentLength, r.TransferEncoding = client, -1, []string{"chunked"}
		r.Header.Set("Content-Type", contentType)
		var refusal *Refusal
		if err := PinBody(r, checkedKey); !errors.As(err, &refusal) || refusal.Status != 413 {
			t.Fatalf("%s: %v, want 413", contentType, err)
		}
		if client.read > MaxInspectedBody+1 {
			t.Fatalf("%s: PinBody read %d bytes to refuse a body over %d", contentType, client.read, MaxInspectedBody)
		}
	}
}

// TestPinBodyTakesLinearTimeOnATrickle: a body arriving a byte at a time
// costs time linear in its size: peek judged its whole head after every
// read, so a megabyte of whitespace sent byte by byte took minutes of CPU
// (a guard timer turns that into a failure).
func TestPinBodyTakesLinearTimeOnATrickle(t *testing.T) {
	for _, body := range [][]byte{
		append(bytes.Repeat([]byte(" "), MaxInspectedBody-64), `{"connectionKey":"`+checkedKey+`"}`...),
		wide(t, strings.Repeat(" ", MaxInspectedBody/2-64)+"{}", 2, false, false),
	} {
		done := make(chan error, 1)
		go func() {
			r := httptest.NewRequest(http.MethodPost, "/v1/passthrough/x", &chunkReader{body, 1})
			done <- PinBody(r, checkedKey)
		}()
		select {
		case err := <-done:
			var refusal *Refusal
			if err != nil && (!errors.As(err, &refusal) || refusal.Status != 415) {
				t.Fatalf("%d bytes: %v", len(body), err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("PinBody takes over 20 s on %d bytes arriving one by one", len(body))
		}
	}
}

// countingReader counts what was read of it and whether it was closed.
type countingReader struct {
	r      io.Reader
	read   int
	closed bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}

func (c *countingReader) Close() error { c.closed = true; return nil }

// TestPinBodyStreamsWhatNeedsNoCheck: a body that cannot name a key (an
// image, plain text, octet-stream, larger than MaxInspectedBody too) is not
// read whole: PinBody reads its first bytes only, and it is forwarded as
// sent, with its length and transfer encoding as they were.
func TestPinBodyStreamsWhatNeedsNoCheck(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + strings.Repeat("\x00\xff", MaxInspectedBody)
	for contentType, body := range map[string]string{
		"image/png":                png,
		"text/plain":               "hello connectionKey=" + otherKey + strings.Repeat(".", MaxInspectedBody),
		"application/octet-stream": "\x00\x01" + strings.Repeat("\x02", 2*MaxInspectedBody),
		"text/csv":                 "connectionKey\n" + otherKey + "\n",
	} {
		client := &countingReader{r: strings.NewReader(body)}
		r := httptest.NewRequest(http.MethodPut, "/v1/passthrough/x", nil)
		r.Body, r.ContentLength, r.TransferEncoding = client, -1, []string{"chunked"}
		r.Header.Set("Content-Type", contentType)
		if err := PinBody(r, checkedKey); err != nil {
			t.Fatalf("%s: %v", contentType, err)
		}
		if client.read > 4096 {
			t.Fatalf("%s: PinBody read %d bytes of a body that needs no check", contentType, client.read)
		}
		forwarded, _ := io.ReadAll(r.Body)
		if string(forwarded) != body || r.ContentLength != -1 || len(r.TransferEncoding) != 1 {
			t.Fatalf("%s: forwarded %d bytes of %d, length %d, %v", contentType, len(forwarded), len(body), r.ContentLength, r.TransferEncoding)
		}
		if r.Body.Close(); !client.closed {
			t.Fatalf("%s: closing the forwarded body does not close the client's", contentType)
		}
	}
}

// TestPinBodyForwardsTheBodyItChecked: a checked body is read whole, and
// what goes on is those bytes, with their length, not a second read of
// the client's body; closing it closes the client's.
func TestPinBodyForwardsTheBodyItChecked(t *testing.T) {
	body := `{"connectionKey":"` + checkedKey + `","data":"` + strings.Repeat("d", 5000) + `"}`
	client := &countingReader{r: strings.NewReader(body)}
	r := httptest.NewRequest(http.MethodPost, "/v1/passthrough/x", nil)
	r.Body, r.ContentLength, r.TransferEncoding = client, -1, []string{"chunked"}
	r.Header.Set("Content-Type", "application/json")
	if err := PinBody(r, checkedKey); err != nil {
		t.Fatal(err)
	}
	if client.read != len(body) {
		t.Fatalf("PinBody read %d bytes of %d", client.read, len(body))
	}
	client.r = strings.NewReader(`{"connectionKey":"` + otherKey + `"}`) // what a second read would get
	forwarded, _ := io.ReadAll(r.Body)
	if string(forwarded) != body || r.ContentLength != int64(len(body)) || r.TransferEncoding != nil {
		t.Fatalf("forwarded %d bytes (%q...), length %d, %v", len(forwarded), forwarded[:min(40, len(forwarded))], r.ContentLength, r.TransferEncoding)
	}
	if r.Body.Close(); !client.closed {
		t.Fatal("closing the forwarded body does not close the client's")
	}
	for _, empty := range []io.ReadCloser{nil, http.NoBody} {
		r := httptest.NewRequest(http.MethodPost, "/v1/passthrough/x", nil)
		r.Body = empty
		r.Header.Set("Content-Type", "application/json")
		if err := PinBody(r, checkedKey); err != nil || r.Body != empty {
			t.Fatalf("no body (%v): %v, body %v", empty, err, r.Body)
		}
	}
}

// keysAServerReads returns every value that a server reading body (of
// that content type) in any of the ways servers read bodies could take for
// a connectionKey: members of JSON (and of NDJSON lines, and of JSON
// strings holding JSON) whose name folds to connectionKey, also in UTF-16
// or UTF-32; form fields and multipart form-data fields named
// connectionKey (also input[connectionKey], connectionKey[0], name*=);
// and what the parts of a multipart body hold. It is written apart from
// PinBody, with the standard library's parsers, as an oracle.
func keysAServerReads(contentType string, body []byte, depth int) []string {
	if depth > 3 {
		return nil
	}
	mediaType, params, _ := mime.ParseMediaType(contentType)
	if mediaType == "" {
		mediaType = strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	}
	var keys []string
	if strings.Contains(mediaType, "json") || startsLikeJSON(body) {
		keys = append(keys, jsonStreamKeys(body, 0)...)
	}
	for _, decoded := range wideDecodings(body) {
		if strings.Contains(mediaType, "json") || startsLikeJSON(decoded) {
			keys = append(keys, jsonStreamKeys(decoded, 0)...)
		}
	}
	switch {
	case mediaType == "application/x-www-form-urlencoded":
		values, _ := url.ParseQuery(string(body))
		for name, vs := range values {
			if formKeyName(name) {
				keys = append(keys, vs...)
			}
		}
	case strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "":
		reader := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			part, err := reader.NextPart()
			if err != nil {
				break
			}
			content, _ := io.ReadAll(part)
			for _, disposition := range part.Header.Values("Content-Disposition") {
				for _, name := range dispositionNames(disposition) {
					if formKeyName(name) {
						keys = append(keys, string(content))
					}
				}
			}
			for _, partType := range append(part.Header.Values("Content-Type"), "") {
				keys = append(keys, keysAServerReads(partType, content, depth+1)...)
			}
		}
	}
	return keys
}

// startsLikeJSON: b opens an object or an array, after a UTF-8 byte order
// mark and whitespace.
func startsLikeJSON(b []byte) bool {
	b = bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// jsonStreamKeys reads b as a stream of JSON values (JSON text sequences'
// record separators taken for newlines), and line by line (NDJSON, where a
// reader skips a bad line), and collects their connection keys.
func jsonStreamKeys(b []byte, depth int) []string {
	b = bytes.ReplaceAll(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), []byte{0x1e}, []byte("\n"))
	var keys []string
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		if dec.Decode(&v) != nil {
			break
		}
		keys = append(keys, jsonKeys(v, depth)...)
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		var v any
		if json.Unmarshal(line, &v) == nil {
			keys = append(keys, jsonKeys(v, depth)...)
		}
	}
	return keys
}

// jsonKeys collects the values of members named connectionKey in any case
// (as encoding/json matches a struct field), at any depth of v and of the
// JSON that its strings hold.
func jsonKeys(v any, depth int) []string {
	var keys []string
	switch v := v.(type) {
	case map[string]any:
		for name, member := range v {
			if strings.EqualFold(name, "connectionKey") {
				s, isString := member.(string)
				if !isString {
					s = fmt.Sprintf("a %T: %v", member, member)
				}
				keys = append(keys, s)
			}
			keys = append(keys, jsonKeys(member, depth)...)
		}
	case []any:
		for _, member := range v {
			keys = append(keys, jsonKeys(member, depth)...)
		}
	case string:
		if depth < maxNestedJSON && startsLikeJSON([]byte(strings.TrimSpace(v))) {
			keys = append(keys, jsonStreamKeys([]byte(strings.TrimSpace(v)), depth+1)...)
		}
	}
	return keys
}

// wideDecodings are b read as UTF-16 and UTF-32 in either byte order, when
// it has a byte order mark of one or a zero byte among its first four.
func wideDecodings(b []byte) [][]byte {
	bom := false
	for _, mark := range []string{"\xfe\xff", "\xff\xfe"} {
		bom = bom || bytes.HasPrefix(b, []byte(mark)) || bytes.HasPrefix(b, []byte("\x00\x00"+mark))
	}
	if !bom && bytes.IndexByte(b[:min(4, len(b))], 0) < 0 {
		return nil
	}
	var out [][]byte
	for _, enc := range []encoding.Encoding{
		textunicode.UTF16(textunicode.BigEndian, textunicode.UseBOM),
		textunicode.UTF16(textunicode.LittleEndian, textunicode.UseBOM),
		utf32.UTF32(utf32.BigEndian, utf32.UseBOM),
		utf32.UTF32(utf32.LittleEndian, utf32.UseBOM),
	} {
		if decoded, err := enc.NewDecoder().Bytes(b); err == nil {
			out = append(out, decoded)
		}
	}
	return out
}

// formKeyName: a form field that a server reads as connectionKey, or as
// a list of them: connectionKey, input[connectionKey], input.connectionKey,
// connectionKey[] and connectionKey[0] (in any case).
func formKeyName(name string) bool {
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == '[' || r == ']' || r == '.' })
	for i, part := range parts {
		if !strings.EqualFold(part, "connectionKey") {
			continue
		}
		if strings.IndexFunc(strings.Join(parts[i+1:], ""), func(r rune) bool { return r < '0' || r > '9' }) < 0 {
			return true
		}
	}
	return false
}

// dispositionNames are the field names a Content-Disposition gives, as Go
// reads it and as a naive server does: each name= and name*= (RFC 2231,
// continuations joined) parameter.
func dispositionNames(disposition string) []string {
	var names []string
	if _, params, err := mime.ParseMediaType(disposition); err == nil && params["name"] != "" {
		names = append(names, params["name"])
	}
	var continued strings.Builder
	for param := range strings.SplitSeq(disposition, ";") {
		k, v, _ := strings.Cut(param, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.Trim(strings.TrimSpace(v), `"`)
		switch {
		case k == "name":
			names = append(names, strings.ReplaceAll(v, `\"`, `"`))
		case strings.HasPrefix(k, "name*"):
			if strings.Count(v, "'") >= 2 {
				v = v[strings.LastIndex(v, "'")+1:]
			}
			if unescaped, err := url.PathUnescape(v); err == nil {
				v = unescaped
			}
			names = append(names, v)
			continued.WriteString(v)
		}
	}
	return append(names, continued.String())
}

// refusalStatuses are the statuses PinBody may refuse with.
var refusalStatuses = map[int]bool{400: true, 403: true, 413: true, 415: true}

// FuzzPinBody: whatever the body, content type and content encoding,
// PinBody lets a body through only when no server reading it (see
// keysAServerReads) finds a connection key other than the checked one, and
// never a compressed one; it forwards exactly the bytes that were sent;
// it refuses with 400, 403, 413 or 415 only; and its answer does not
// depend on how the body arrives (in one read or byte by byte).
func FuzzPinBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, contentType, contentEncoding string, body []byte) {
		refusal, forwarded := pin(t, contentType, contentEncoding, body, 0)
		slow, slowForwarded := pin(t, contentType, contentEncoding, body, 1)
		if (refusal == nil) != (slow == nil) || refusal != nil && *refusal != *slow {
			t.Fatalf("%q (%s, %s): %v in one read, %v byte by byte", body, contentType, contentEncoding, refusal, slow)
		}
		if refusal != nil {
			if !refusalStatuses[refusal.Status] {
				t.Fatalf("%q (%s): refused with %d", body, contentType, refusal.Status)
			}
			return
		}
		if !bytes.Equal(forwarded, body) || !bytes.Equal(slowForwarded, body) {
			t.Fatalf("%q (%s) forwarded as %q", body, contentType, forwarded)
		}
		for coding := range strings.SplitSeq(contentEncoding, ",") {
			if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
				t.Fatalf("%q (%s) let through with Content-Encoding %q", body, contentType, contentEncoding)
			}
		}
		for _, oneType := range append(contentTypes(contentType), "") {
			for _, key := range keysAServerReads(oneType, body, 0) {
				if key != checkedKey {
					t.Fatalf("%q (%s) let through, but a server reads the connection key %q from it", body, contentType, key)
				}
			}
		}
	})
}

// TestPinQueryRefusesAnotherKeyInTheQuery: the query may name the checked
// key (once) or none; another, however spelled or encoded, is 403.
func TestPinQueryRefusesAnotherKeyInTheQuery(t *testing.T) {
	const key = "test::gmail::default::abc|alice"
	other := url.QueryEscape("test::gmail::default::abc|bob")
	for query, want := range map[string]string{
		"":                                      "",
		"a=1&b=2":                               "",
		"monkey=1&keys=2":                       "",
		"connectionKey=" + url.QueryEscape(key): "",
		"connectionKey=" + other:                "connection_not_owned",
		"connection_key=" + other:               "connection_not_owned",
		"ConnectionKEY=" + other:                "connection_not_owned",
		"input[connectionKey]=" + other:         "connection_not_owned",
		"a=1;connectionKey=" + other:            "connection_not_owned",
		"%63onnectionKey=" + other:              "connection_not_owned",
		"connection%4Bey=" + other:              "connection_not_owned",
		"connection+key=" + other:               "connection_not_owned",
		"\uff43onnectionKey=" + other:           "connection_not_owned",
		"connectionKey":                         "connection_not_owned",
		"connectionKey=%zz":                     "connection_not_owned",
		"%zz=1&key=x":                           "query_invalid",
		"connectionKey=" + url.QueryEscape(key) + "&connectionKey=" + url.QueryEscape(key): "body_ambiguous",
		// Fullwidth and without a value: no byte of it is ASCII.
		"\uff43\uff4f\uff4e\uff4e\uff45\uff43\uff54\uff49\uff4f\uff4e\uff2b\uff45\uff59": "connection_not_owned",
	} {
		err := PinQuery(query, key)
		got := ""
		if err != nil {
			got = err.(*Refusal).Code
		}
		if got != want {
			t.Errorf("PinQuery(%q) = %q, want %q", query, got, want)
		}
	}
}
