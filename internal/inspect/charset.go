package inspect

import (
	"bytes"
	"errors"
	"io"
	"net/http"
)

// What a body is written in: where its content starts, and whether it is
// JSON in UTF-16 or UTF-32, which the checks here cannot read.

// peek reads up to the first byte that is not whitespace or a UTF-8 BOM,
// and at least 4 bytes, or to the end. When one of the first 4 bytes is
// zero (UTF-16 or UTF-32, whose whitespace is wide too), it reads on to
// the first unit that is not whitespace in each width and byte order, so
// what is judged never depends on how the body arrived. It may read more:
// head is judged again only once it has doubled, so a body trickling in
// byte by byte costs linear time, not quadratic.
func peek(body io.Reader) ([]byte, error) {
	head := make([]byte, 0, 512)
	judgeAt := 1
	for {
		if len(head) == cap(head) {
			if len(head) >= MaxInspectedBody {
				return nil, refuse(http.StatusRequestEntityTooLarge, "body_too_large", "the request body starts with too much whitespace")
			}
			// Doubled, never past the limit (append grew it past, to
			// 1826816 bytes, so the limit depended on the runtime).
			head = append(make([]byte, 0, min(2*len(head), MaxInspectedBody)), head...)
		}
		n, err := body.Read(head[len(head):cap(head)])
		head = head[:len(head)+n]
		if len(head) >= judgeAt {
			if _, ok := firstContent(head); ok && len(head) >= 4 && (bytes.IndexByte(head[:4], 0) < 0 || wideSettled(head)) {
				return head, nil
			}
			judgeAt = 2 * len(head)
		}
		if errors.Is(err, io.EOF) {
			return head, nil
		}
		if err != nil {
			return nil, errBodyUnreadable()
		}
	}
}

// utf8BOM may open a UTF-8 body; parsers skip it.
const utf8BOM = "\xef\xbb\xbf"

// contentStart is b after a leading UTF-8 BOM and whitespace.
func contentStart(b []byte) []byte {
	return bytes.TrimLeft(bytes.TrimPrefix(b, []byte(utf8BOM)), " \t\r\n")
}

// firstContent is the first byte of b's content, if it has arrived.
func firstContent(b []byte) (byte, bool) {
	if len(b) > 0 && len(b) < len(utf8BOM) && bytes.HasPrefix([]byte(utf8BOM), b) {
		return 0, false // a BOM still arriving
	}
	if rest := contentStart(b); len(rest) > 0 {
		return rest[0], true
	}
	return 0, false
}

// wideJSON: head is JSON in UTF-16 or UTF-32, with or without a byte order
// mark. Some parsers decode it; the checks here read UTF-8 only.
func wideJSON(head []byte) bool {
	for _, bom := range []string{"\xfe\xff", "\xff\xfe", "\x00\x00\xfe\xff"} {
		if bytes.HasPrefix(head, []byte(bom)) {
			return true
		}
	}
	if len(head) < 2 || bytes.IndexByte(head[:min(4, len(head))], 0) < 0 {
		return false
	}
	for _, width := range []int{2, 4} {
		for _, bigEndian := range []bool{true, false} {
			switch unit, _ := firstWide(head, width, bigEndian); unit {
			case '{', '[', '"':
				return true
			}
		}
	}
	return false
}

// wideSettled: head holds a unit that is not whitespace in each width and
// byte order, so wideJSON's answer will not change with more of the body.
func wideSettled(head []byte) bool {
	for _, width := range []int{2, 4} {
		for _, bigEndian := range []bool{true, false} {
			if _, found := firstWide(head, width, bigEndian); !found {
				return false
			}
		}
	}
	return true
}

// firstWide is the first code unit of head that is not whitespace, read as
// width-byte units in the given byte order, and whether there is one.
func firstWide(head []byte, width int, bigEndian bool) (rune, bool) {
	for i := 0; i+width <= len(head); i += width {
		var unit rune
		for j := range width {
			shift := 8 * j
			if bigEndian {
				shift = 8 * (width - 1 - j)
			}
			unit |= rune(head[i+j]) << shift
		}
		switch unit {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return unit, true
	}
	return 0, false
}
