package caddyauthkit

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"time"
)

// ticketHeader carries a ticket to the token route.
const ticketHeader = "X-AuthKit-Ticket"

// canonicalTicketHeader is its key in a header map, looked up without
// canonicalising on every request.
var canonicalTicketHeader = http.CanonicalHeaderKey(ticketHeader)

// ticketVersion is the first byte of every ticket.
const ticketVersion = 1

// tickets mint and open the short-lived credentials that stand for the
// caller on the token route, so the app's own sign-in credential never goes
// into the vendor's iframe URL. A ticket is opaque: the identity, its type
// and the expiry are encrypted (AES-256-CTR) and the whole is signed
// (HMAC-SHA256, encrypt-then-MAC). Both keys are derived from one key, by
// default the secret's, so every instance with the same secret accepts the
// tickets of the others, with no shared store.
type tickets struct {
	encKey, macKey []byte
	ttl            time.Duration
	now            func() time.Time
}

func newTickets(key string, ttl time.Duration) *tickets {
	return &tickets{
		encKey: deriveKey(key, purposeTicket+" encryption"),
		macKey: deriveKey(key, purposeTicket+" signature"),
		ttl:    ttl,
		now:    time.Now,
	}
}

// mint returns a ticket for id and its expiry.
func (t *tickets) mint(id identity) (string, time.Time) {
	expires := t.now().Add(t.ttl).Truncate(time.Second)
	plain := binary.BigEndian.AppendUint64(nil, uint64(expires.Unix()))
	plain = append(plain, byte(len(id.Type)))
	plain = append(plain, id.Type...)
	plain = append(plain, id.ID...)

	out := make([]byte, 1+aes.BlockSize, 1+aes.BlockSize+len(plain)+sha256.Size)
	out[0] = ticketVersion
	iv := out[1 : 1+aes.BlockSize]
	_, _ = rand.Read(iv)
	sealed := make([]byte, len(plain))
	t.stream(iv).XORKeyStream(sealed, plain)
	out = append(out, sealed...)
	out = append(out, t.sign(out)...)
	return base64.RawURLEncoding.EncodeToString(out), expires
}

// open returns the identity a ticket stands for, if it is intact and alive.
func (t *tickets) open(ticket string) (identity, error) {
	raw, err := base64.RawURLEncoding.DecodeString(ticket)
	minLen := 1 + aes.BlockSize + 9 + sha256.Size
	if err != nil || len(raw) < minLen || len(raw) > minLen+255+maxIdentityLength || raw[0] != ticketVersion {
		return identity{}, errTicketInvalid()
	}
	body, mac := raw[:len(raw)-sha256.Size], raw[len(raw)-sha256.Size:]
	if !hmac.Equal(mac, t.sign(body)) {
		return identity{}, errTicketInvalid()
	}
	iv, sealed := body[1:1+aes.BlockSize], body[1+aes.BlockSize:]
	plain := make([]byte, len(sealed))
	t.stream(iv).XORKeyStream(plain, sealed)

	expires := time.Unix(int64(binary.BigEndian.Uint64(plain)), 0)
	typeLen := int(plain[8])
	if !t.now().Before(expires) || 9+typeLen > len(plain) {
		return identity{}, errTicketInvalid()
	}
	id := identity{Type: string(plain[9 : 9+typeLen]), ID: string(plain[9+typeLen:])}
	if !validIdentityType(id.Type) || invalidIdentity(id.ID) != "" {
		return identity{}, errTicketInvalid()
	}
	return id, nil
}

func (t *tickets) sign(b []byte) []byte {
	mac := hmac.New(sha256.New, t.macKey)
	mac.Write(b)
	return mac.Sum(nil)
}

func (t *tickets) stream(iv []byte) cipher.Stream {
	block, _ := aes.NewCipher(t.encKey) // a 32-byte key never fails
	return cipher.NewCTR(block, iv)
}

func errTicketInvalid() *apiError {
	return newError(http.StatusUnauthorized, "ticket_invalid", "the ticket is invalid or has expired; ask the app for a new one")
}

// serveTicket mints a ticket for the caller, who came through the app's
// authentication layer (same origin).
func (a *AuthKit) serveTicket(w http.ResponseWriter, r *http.Request, id identity) error {
	defer a.audit(r, newAudit(ticketRoute, id), nil)
	a.renewGeneration(id) // the widget may connect another account
	ticket, expires := a.tickets.mint(id)
	body, _ := json.Marshal(map[string]string{"ticket": ticket, "expiresAt": expires.UTC().Format(time.RFC3339)})
	a.writeJSON(w, r, ticketRoute, body)
	return nil
}
