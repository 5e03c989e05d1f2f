package inspect

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIdentityLength is the longest identity accepted, in bytes.
const MaxIdentityLength = 128

// Identity says why id cannot be a caller's identity, or "" when it can: it
// must be UTF-8 text of at most MaxIdentityLength bytes, neither blank nor holding control
// characters.
func Identity(id string) string {
	switch {
	case strings.TrimSpace(id) == "":
		return "is blank"
	case len(id) > MaxIdentityLength:
		return "is longer than " + strconv.Itoa(MaxIdentityLength) + " bytes"
	case !utf8.ValidString(id):
		return "is not UTF-8"
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "contains control characters"
	}
	return ""
}

// IdentityType: t is one of the vendor's identity types.
func IdentityType(t string) bool {
	switch t {
	case "user", "team", "organization", "project":
		return true
	}
	return false
}
