package inspect

import "testing"

// TestRefusalErrorSaysItsCodeAndMessage: a refusal logged as an error
// reads as its code, then what the client is told.
func TestRefusalErrorSaysItsCodeAndMessage(t *testing.T) {
	_, err := Path("")
	if err == nil || err.Error() != "path_invalid: the passthrough path is empty" {
		t.Fatalf("Path(\"\"): %v", err)
	}
}
