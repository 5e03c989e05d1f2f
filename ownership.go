package caddyauthkit

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/singleflight"
)

// ownerKey identifies one (identity, identity type, connection key) answer.
// It is a hash so that entries stay small and hold no secret material.
type ownerKey [16]byte

func newOwnerKey(id identity, connectionKey string) ownerKey {
	var stack [256]byte
	b := append(stack[:0], id.Type...)
	b = append(b, 0)
	b = append(b, id.ID...)
	b = append(b, 0)
	b = append(b, connectionKey...)
	sum := sha256.Sum256(b)
	return ownerKey(sum[:16])
}

// ownershipCache remembers positive ownership answers for a TTL, least
// recently used first out once it holds max entries.
type ownershipCache struct {
	mu      sync.Mutex
	entries map[ownerKey]*ownerEntry
	head    ownerEntry // sentinel of the recency list: head.next is the newest
	max     int
	ttl     time.Duration
	now     func() time.Time
	metrics *metrics

	// calls coalesces concurrent lookups of one key into one Pica call.
	calls singleflight.Group
}

type ownerEntry struct {
	key        ownerKey
	expires    int64
	prev, next *ownerEntry
}

func newOwnershipCache(max int, ttl time.Duration, m *metrics) *ownershipCache {
	c := &ownershipCache{entries: make(map[ownerKey]*ownerEntry), max: max, ttl: ttl, now: time.Now, metrics: m}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *ownershipCache) has(k ownerKey) bool {
	now := c.now().UnixNano()
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && e.expires < now {
		c.remove(e)
		ok = false
	}
	if ok {
		c.unlink(e)
		c.pushFront(e)
	}
	c.mu.Unlock()
	c.metrics.cacheLookup(ok)
	return ok
}

func (c *ownershipCache) add(k ownerKey) {
	expires := c.now().Add(c.ttl).UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		e.expires = expires
		c.unlink(e)
		c.pushFront(e)
		return
	}
	if len(c.entries) >= c.max {
		c.remove(c.head.prev)
		c.metrics.cacheEviction()
	}
	e := &ownerEntry{key: k, expires: expires}
	c.entries[k] = e
	c.pushFront(e)
}

func (c *ownershipCache) forget(k ownerKey) {
	c.mu.Lock()
	if e, ok := c.entries[k]; ok {
		c.remove(e)
	}
	c.mu.Unlock()
}

func (c *ownershipCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *ownershipCache) clear() {
	c.mu.Lock()
	c.entries = make(map[ownerKey]*ownerEntry)
	c.head.prev, c.head.next = &c.head, &c.head
	c.mu.Unlock()
}

func (c *ownershipCache) remove(e *ownerEntry) {
	c.unlink(e)
	delete(c.entries, e.key)
}

func (c *ownershipCache) unlink(e *ownerEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *ownershipCache) pushFront(e *ownerEntry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

// checkOwnership refuses a connection key that is not the caller's: at once
// when the key's identity suffix names someone else, else from the cache, else
// by asking Pica's vault (concurrent misses for one key share one call).
func (a *AuthKit) checkOwnership(ctx context.Context, id identity, connectionKey string) error {
	err := a.ownership(ctx, id, connectionKey)
	if err != nil {
		if c := a.logger.Check(zapcore.DebugLevel, "connection refused"); c != nil {
			// Hashes only: enough to correlate, nothing to reuse.
			c.Write(zap.String("identity", redact(id.Type+":"+id.ID)), zap.String("connection_key", redact(connectionKey)))
		}
	}
	return err
}

func (a *AuthKit) ownership(ctx context.Context, id identity, connectionKey string) error {
	if _, suffix, ok := strings.Cut(connectionKey, "|"); ok && suffix != keySuffix(id.ID) {
		return notOwned()
	}
	k := newOwnerKey(id, connectionKey)
	if a.owners.has(k) {
		return nil
	}
	ch := a.owners.calls.DoChan(string(k[:]), func() (any, error) {
		owned, err := a.askOwnership(context.WithoutCancel(ctx), id, connectionKey)
		if err == nil && owned {
			a.owners.add(k)
		}
		return owned, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return res.Err
		}
		if !res.Val.(bool) {
			return notOwned()
		}
		return nil
	case <-ctx.Done():
		return newError(499, "client_closed", "the client went away")
	}
}

func notOwned() error {
	return newError(http.StatusForbidden, "connection_not_owned", "the connection does not belong to the caller")
}

// vaultConnection is the part of a vault row the gateway checks.
type vaultConnection struct {
	ID           string `json:"id"`
	Key          string `json:"key"`
	Identity     string `json:"identity"`
	IdentityType string `json:"identityType"`
}

func (c vaultConnection) ownedBy(id identity) bool {
	return c.Identity == id.ID && c.IdentityType == id.Type
}

// askOwnership asks Pica's vault whether connectionKey belongs to id. The
// filter is sent, and every row returned is checked again here.
func (a *AuthKit) askOwnership(ctx context.Context, id identity, connectionKey string) (bool, error) {
	body, err := a.pica.do(ctx, picaCall{
		Endpoint: "vault_lookup",
		Method:   http.MethodGet,
		Path:     "/v1/vault/connections",
		Query: url.Values{
			"key":          {connectionKey},
			"identity":     {id.ID},
			"identityType": {id.Type},
			"limit":        {"20"},
		},
		Idempotent: true,
	})
	if err != nil {
		return false, unexpected(err)
	}
	var list struct {
		Rows []vaultConnection `json:"rows"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return false, badAnswer()
	}
	for _, row := range list.Rows {
		if row.Key == connectionKey && row.ownedBy(id) {
			return true, nil
		}
	}
	return false, nil
}
