package caddyauthkit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyauthkit/caddyauthkit/internal/cache"
	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

// keylessHeader names, instead of a connection key, the caller's connection
// to use: a platform (gmail) or a connection id.
const keylessHeader = "X-AuthKit-Connection"

// owners answers whose connections are whose: whether a connection key is
// the caller's, and which of the caller's connections a platform or an id
// names (keyless passthrough). It asks the vendor's vault, re-checks every
// row it gets, and caches positive answers per caller in one bounded cache;
// concurrent misses share one call.
type owners struct {
	vendor    *vendor.Client
	cache     *cache.Cache[string]
	platforms map[string]struct{} // the allow-list; nil allows all
	logger    *zap.Logger
	hash      func(string) string // for logs: identities and keys hashed
}

func newOwners(client *vendor.Client, size int, ttl time.Duration, platforms map[string]struct{}, logger *zap.Logger, hash func(string) string, m *metrics) *owners {
	c := cache.New[string](size, ttl)
	c.OnLookup, c.OnEvict = m.cacheLookup, m.cacheEviction
	return &owners{vendor: client, cache: c, platforms: platforms, logger: logger, hash: hash}
}

// owner names a caller in the cache: the hash of its identity and type,
// made once per question (hashing costs more than the lookups).
type owner string

func ownerOf(id identity) owner {
	sum := sha256.Sum256([]byte(id.Type + "\x00" + id.ID))
	return owner(sum[:16])
}

// key names one cached answer about the owner: the kind of question and
// its subject, hashed so names stay small and no name holds a key.
func (who owner) key(kind byte, subject string) string {
	var b [33]byte
	copy(b[:16], who)
	b[16] = kind
	if subject != "" {
		sum := sha256.Sum256([]byte(subject))
		copy(b[17:], sum[:16])
	}
	return string(b[:])
}

// Kinds of cached answers.
const (
	ownsKey      byte = 'k' // the connection key is id's
	resolvesName byte = 'n' // a keyless platform or id resolves to a key
	epochsOf     byte = 'e' // the caller's epochs
)

// A cached answer is stamped with the caller's epochs it holds for, and is
// stale once they change. Epochs change in O(1), and a stale answer is
// replaced where it stands when next asked, so none piles up:
//
//   - the names epoch changes when the caller may have connected an account
//     (the widget opened, the connections were listed): it outdates which
//     connection a platform names;
//   - the deletes epoch changes when the caller deleted a connection: it
//     outdates every answer.
type epochs struct{ names, deletes string }

// currentEpochs are the owner's epochs, new ones when it has none; renew
// and forget change one of them. The read and the change are one step, so
// a renew and a forget at once never undo each other.
func (o *owners) currentEpochs(who owner) epochs { return o.changeEpochs(who, false, false) }

func (o *owners) changeEpochs(who owner, names, deletes bool) epochs {
	e := o.cache.Update(who.key(epochsOf, ""), func(old string, ok bool) string {
		if !ok || len(old) != 2*epochLen {
			return newEpoch() + newEpoch()
		}
		if names {
			old = newEpoch() + old[epochLen:]
		}
		if deletes {
			old = old[:epochLen] + newEpoch()
		}
		return old
	})
	return epochs{e[:epochLen], e[epochLen:]}
}

// epochLen is the length of an epoch: random bytes, of any value.
const epochLen = 8

func newEpoch() string {
	var b [epochLen]byte
	_, _ = rand.Read(b[:])
	return string(b[:])
}

// load is the answer under key for a caller whose answer holds while stamp
// does: from the cache, or fetched and stamped. Callers with another
// stamp never share a fetch. A hit builds nothing: it is every
// passthrough's path.
func (o *owners) load(ctx context.Context, key, stamp string, fetch func(context.Context) (string, bool, error)) (string, error) {
	if v, ok := o.cache.Get(key); ok && strings.HasPrefix(v, stamp) {
		return v[len(stamp):], nil
	}
	fresh := func(v string) bool { return strings.HasPrefix(v, stamp) }
	v, err := o.cache.Fetch(ctx, key, key+stamp, fresh, func(ctx context.Context) (string, bool, error) {
		answer, keep, err := fetch(ctx)
		return stamp + answer, keep, err
	})
	if err != nil {
		return "", err
	}
	return v[len(stamp):], nil
}

// check refuses a connection key that is not the caller's: at once when the
// key's identity suffix names someone else, else from the cache, else by
// asking the vault.
func (o *owners) check(ctx context.Context, id identity, connectionKey string) error {
	if _, suffix, ok := strings.Cut(connectionKey, "|"); ok && suffix != keySuffix(id.ID) {
		return o.notOwned(id, connectionKey)
	}
	who := ownerOf(id)
	owned, err := o.load(ctx, who.key(ownsKey, connectionKey), o.currentEpochs(who).deletes, func(ctx context.Context) (string, bool, error) {
		owned, err := o.askVault(ctx, id, connectionKey)
		if err != nil || !owned {
			return "", false, err
		}
		return "owned", true, nil
	})
	if err != nil {
		return err
	}
	if owned == "" {
		return o.notOwned(id, connectionKey)
	}
	return nil
}

// notOwned is the denial of a key that is not the caller's, logged with
// hashes only: enough to correlate, nothing to reuse.
func (o *owners) notOwned(id identity, connectionKey string) error {
	if c := o.logger.Check(zapcore.DebugLevel, "connection key not owned by the caller"); c != nil {
		c.Write(zap.String("identity", o.hash(id.Type+":"+id.ID)), zap.String("connection_key", o.hash(connectionKey)))
	}
	return newError(http.StatusForbidden, "connection_not_owned", "the connection does not belong to the caller")
}

// askVault asks the vault whether connectionKey belongs to id. The filter
// is sent, and every row returned is checked again here. The vault's key
// filter is a comma list, so a key with a comma (an identity such as
// uid=carol,ou=people) is looked up by identity and platform instead.
func (o *owners) askVault(ctx context.Context, id identity, connectionKey string) (bool, error) {
	query := url.Values{"identity": {id.ID}, "identityType": {id.Type}, "limit": {"100"}}
	if strings.Contains(connectionKey, ",") {
		query.Set("platform", keyPlatform(connectionKey))
	} else {
		query.Set("key", connectionKey)
	}
	owned := false
	err := o.eachRow(ctx, query, func(row vendor.Connection) bool {
		owned = row.Key == connectionKey && row.OwnedBy(id.ID, id.Type)
		return owned
	})
	return owned, err
}

// maxVaultPages bounds how many pages of 100 rows a question reads.
const maxVaultPages = 10

// eachRow hands the rows the vault lists for query to fn, page by page,
// until fn says it has what it wanted or the pages end.
func (o *owners) eachRow(ctx context.Context, query url.Values, fn func(vendor.Connection) bool) error {
	for n := 1; n <= maxVaultPages; n++ {
		query.Set("page", strconv.Itoa(n))
		page, err := o.vendor.VaultList(ctx, query)
		if err != nil {
			return err
		}
		for _, row := range page.Rows {
			if fn(row) {
				return nil
			}
		}
		if len(page.Rows) == 0 || n >= page.Pages() {
			return nil
		}
	}
	return nil
}

// resolve finds the caller's one active connection named by value (keyless
// passthrough) and returns its key and id. A value shaped like a UUID is a
// connection id (the vault's ids are UUIDs, and no platform name is one);
// anything else is a platform. Only the caller's own rows are ever
// considered, so a resolved key is the caller's by construction.
func (o *owners) resolve(ctx context.Context, id identity, value string) (key, connectionID string, err error) {
	byID := looksLikeUUID(value)
	if !byID && !validName(value) {
		return "", "", newError(http.StatusBadRequest, "connection_invalid", "the "+keylessHeader+" header must be a platform name or a connection id")
	}
	if !byID && o.platforms != nil {
		// Refused before asking the vault; a resolved key is checked again.
		if _, ok := o.platforms[value]; !ok {
			return "", "", errPlatformNotAllowed()
		}
	}
	// Only the id → key answers outlive a new connection: a platform's
	// answer changes when the caller connects another account.
	who := ownerOf(id)
	e := o.currentEpochs(who)
	stamp := e.deletes
	if !byID {
		stamp = e.names + e.deletes
	}
	found, err := o.load(ctx, who.key(resolvesName, value), stamp, func(ctx context.Context) (string, bool, error) {
		conn, err := o.find(ctx, id, value, byID)
		if err != nil {
			return "", false, err
		}
		return conn.ID + "\n" + conn.Key, true, nil
	})
	if err != nil {
		return "", "", err
	}
	connectionID, key, _ = strings.Cut(found, "\n")
	return key, connectionID, nil
}

// find is the caller's one active connection with that id, or to that
// platform. Anyone else's is not found alike, so the answer reveals
// nothing; several to one platform is 409 naming them (never their keys),
// so the app can pick one by id.
func (o *owners) find(ctx context.Context, id identity, value string, byID bool) (vendor.Connection, error) {
	mine := func(c vendor.Connection) bool { return c.OwnedBy(id.ID, id.Type) && c.Usable() }
	if byID {
		conn, found, err := o.vendor.VaultGet(ctx, value)
		if err != nil {
			return conn, err
		}
		if !found || !mine(conn) {
			return conn, errConnectionNotFound()
		}
		return conn, nil
	}
	query := url.Values{"identity": {id.ID}, "identityType": {id.Type}, "platform": {value}, "active": {"true"}, "limit": {"100"}}
	var matches []vendor.Connection
	err := o.eachRow(ctx, query, func(row vendor.Connection) bool {
		// The filters are checked again: a vault that ignored one must not
		// hand out someone else's key.
		if mine(row) && row.Platform == value {
			matches = append(matches, row)
		}
		return false
	})
	if err != nil {
		return vendor.Connection{}, err
	}
	switch len(matches) {
	case 0:
		return vendor.Connection{}, errConnectionNotFound()
	case 1:
		return matches[0], nil
	}
	ambiguous := newError(http.StatusConflict, "connection_ambiguous", "the caller has several "+value+" connections; name one by id in "+keylessHeader)
	for _, m := range matches {
		ambiguous.Connections = append(ambiguous.Connections, connectionSummary{ID: m.ID, Name: m.Name, Platform: m.Platform})
	}
	return vendor.Connection{}, ambiguous
}

// renew outdates id's platform answers: the token and ticket routes call
// it, since the widget they open may connect an account, and so does the
// connections list, since what the caller sees there is what keyless
// resolves next.
func (o *owners) renew(id identity) { o.changeEpochs(ownerOf(id), true, false) }

// forget outdates every cached answer about id's connections: one of them
// was deleted.
func (o *owners) forget(id identity) { o.changeEpochs(ownerOf(id), false, true) }

// connectionSummary names a connection without its key, for answers that
// list candidates.
type connectionSummary struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Platform string `json:"platform"`
}

func errConnectionNotFound() *apiError {
	return newError(http.StatusNotFound, "connection_not_found", "no such connection for the caller")
}

func errPlatformNotAllowed() *apiError {
	return newError(http.StatusForbidden, "platform_not_allowed", "this platform is not allowed through the gateway")
}

// keyPlatform is the platform named by a connection key
// ({env}::{platform}::default::{hex}[|identity]).
func keyPlatform(key string) string {
	parts := strings.SplitN(key, "::", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

// looksLikeUUID: 8-4-4-4-12 hexadecimal digits.
func looksLikeUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
