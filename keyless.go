package caddyauthkit

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// keylessHeader names, instead of a connection key, the caller's connection
// to use: a platform (gmail) or a connection id.
const keylessHeader = "X-AuthKit-Connection"

// resolveConnection finds the caller's one active connection named by value
// and returns the call with its key attached. A value shaped like a UUID is
// a connection id (the vault's ids are UUIDs, and no platform name is one);
// anything else is a platform. Ownership is implied: only the caller's own
// rows are ever considered. Positive answers are cached per identity and
// value, and forgotten when the caller deletes a connection.
func (a *AuthKit) resolveConnection(ctx context.Context, id identity, value string) (*checkedCall, error) {
	byID := looksLikeUUID(value)
	if !byID && !validName(value) {
		return nil, newError(http.StatusBadRequest, "connection_invalid", "the "+keylessHeader+" header must be a platform name or a connection id")
	}
	if !byID && a.platforms != nil {
		// Refused before asking the vault; a resolved key is checked again.
		if _, ok := a.platforms[value]; !ok {
			return nil, newError(http.StatusForbidden, "platform_not_allowed", "this platform is not allowed through the gateway")
		}
	}
	// Only the id → key answers are stable: a platform's answer changes when
	// the caller connects another account, so it is keyed by the caller's
	// generation, which opening the widget renews.
	subject := value
	if !byID {
		subject = a.generation(id) + "\x00" + value
	}
	found, err := a.owners.load(ctx, ownerCacheKey(id, resolvesName, subject), func(ctx context.Context) (string, bool, error) {
		var conn vaultConnection
		var err error
		if byID {
			conn, err = a.connectionByID(ctx, id, value)
		} else {
			conn, err = a.connectionByPlatform(ctx, id, value)
		}
		if err != nil {
			return "", false, err
		}
		return conn.ID + "\n" + conn.Key, true, nil
	})
	if err != nil {
		return nil, err
	}
	connectionID, key, _ := strings.Cut(found, "\n")
	return &checkedCall{connectionKey: key, platform: keyPlatform(key), connectionID: connectionID}, nil
}

func errConnectionNotFound() *apiError {
	return newError(http.StatusNotFound, "connection_not_found", "no such connection for the caller")
}

// connectionByID is the caller's active connection with that id; anyone
// else's is not found alike, so the answer reveals nothing.
func (a *AuthKit) connectionByID(ctx context.Context, id identity, connectionID string) (vaultConnection, error) {
	conn, found, err := a.pica.vaultGet(ctx, connectionID)
	if err != nil {
		return conn, err
	}
	if !found || !conn.ownedBy(id) || !usable(conn) {
		return conn, errConnectionNotFound()
	}
	return conn, nil
}

// connectionByPlatform is the caller's one active connection to platform:
// none is 404, several is 409 naming them (never their keys) so the app can
// pick one by id.
func (a *AuthKit) connectionByPlatform(ctx context.Context, id identity, platform string) (vaultConnection, error) {
	query := url.Values{"identity": {id.ID}, "identityType": {id.Type}, "platform": {platform}, "active": {"true"}, "limit": {"100"}}
	page, err := a.pica.vaultList(ctx, query)
	if err != nil {
		return vaultConnection{}, err
	}
	var matches []vaultConnection
	for _, row := range page.rows {
		// The filters are checked again: a vault that ignored one must not
		// hand out someone else's key.
		if row.ownedBy(id) && row.Platform == platform && usable(row) {
			matches = append(matches, row)
		}
	}
	switch len(matches) {
	case 0:
		return vaultConnection{}, errConnectionNotFound()
	case 1:
		return matches[0], nil
	}
	ambiguous := newError(http.StatusConflict, "connection_ambiguous", "the caller has several "+platform+" connections; name one by id in "+keylessHeader)
	for _, m := range matches {
		ambiguous.Connections = append(ambiguous.Connections, connectionSummary{ID: m.ID, Name: m.Name, Platform: m.Platform})
	}
	return vaultConnection{}, ambiguous
}

// usable: active (a row without the field counts as active) and with a key.
func usable(c vaultConnection) bool {
	return (c.Active == nil || *c.Active) && c.Key != "" && c.ID != ""
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
