// Package inspect checks what the gateway takes from browsers before it
// acts on it: the passthrough path, passthrough bodies, identities. Each
// check refuses what it cannot be sure of and has a fuzz target; only
// PinBody changes what it is given (it puts back the body it read).
package inspect

// Refusal is untrusted input that fails a check, as the caller is told.
type Refusal struct {
	Status  int
	Code    string
	Message string
}

func (r *Refusal) Error() string { return r.Code + ": " + r.Message }

func refuse(status int, code, message string) *Refusal {
	return &Refusal{Status: status, Code: code, Message: message}
}
