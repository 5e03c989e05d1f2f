// Package cache keeps answers for a while: a bounded TTL and LRU cache, and
// a flight group that runs one call for every concurrent caller and stops
// it when the last caller has gone.
package cache

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Cache keeps values for a TTL, the least recently used out first once it
// holds max entries. Concurrent misses of one key share one fetch.
type Cache[V any] struct {
	mu      sync.Mutex
	entries map[string]*list.Element
	order   *list.List // front: most recently used
	max     int
	ttl     time.Duration
	now     func() time.Time
	flights Group

	// OnLookup and OnEvict feed the metrics; nil for none. Set them before
	// the cache is shared.
	OnLookup func(hit bool)
	OnEvict  func()
}

type cacheEntry[V any] struct {
	key     string
	value   V
	expires time.Time
}

// New makes a cache of at most max entries, each kept for ttl.
func New[V any](max int, ttl time.Duration) *Cache[V] {
	return &Cache[V]{entries: make(map[string]*list.Element), order: list.New(), max: max, ttl: ttl, now: time.Now}
}

// Get returns the value of key if it is there and fresh.
func (c *Cache[V]) Get(key string) (V, bool) {
	c.mu.Lock()
	value, ok := c.fresh(key)
	c.mu.Unlock()
	if c.OnLookup != nil {
		c.OnLookup(ok)
	}
	return value, ok
}

// fresh is the value of key if it is there and fresh; c.mu is held.
func (c *Cache[V]) fresh(key string) (V, bool) {
	var value V
	el, ok := c.entries[key]
	if ok {
		e := el.Value.(*cacheEntry[V])
		if ok = c.now().Before(e.expires); ok {
			c.order.MoveToFront(el)
			value = e.value
		} else {
			c.order.Remove(el)
			delete(c.entries, key)
		}
	}
	return value, ok
}

// Update stores under key what change makes of the value there (ok is
// false when there is none, or none fresh), in one step: no other call
// comes between the read and the write. It returns the value stored.
// Update is bookkeeping: it does not count as a lookup.
func (c *Cache[V]) Update(key string, change func(old V, ok bool) V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	value := change(c.fresh(key))
	c.add(key, value)
	return value
}

// Add stores value under key for the TTL.
func (c *Cache[V]) Add(key string, value V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(key, value)
}

// add is Add with c.mu held.
func (c *Cache[V]) add(key string, value V) {
	expires := c.now().Add(c.ttl)
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry[V])
		e.value, e.expires = value, expires
		c.order.MoveToFront(el)
		return
	}
	if c.order.Len() >= c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry[V]).key)
		if c.OnEvict != nil {
			c.OnEvict()
		}
	}
	c.entries[key] = c.order.PushFront(&cacheEntry[V]{key: key, value: value, expires: expires})
}

// Len is how many entries the cache holds, fresh or not.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// Clear forgets every entry.
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	clear(c.entries)
	c.order.Init()
	c.mu.Unlock()
}

// Load returns the cached value of key, or fetches it once for every
// concurrent caller. fetch says whether its value may be cached.
func (c *Cache[V]) Load(ctx context.Context, key string, fetch func(context.Context) (V, bool, error)) (V, error) {
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	return c.Fetch(ctx, key, key, nil, fetch)
}

// Fetch is what Load does after a miss, for a caller that has looked key up
// with Get itself (its hit path then builds nothing) or whose values can go
// stale before their TTL: a cached value that fresh refuses is fetched
// again and replaced where it stood, so stale values never pile up under
// keys of their own. Concurrent fetches of one flight name are shared.
func (c *Cache[V]) Fetch(ctx context.Context, key, flight string, fresh func(V) bool, fetch func(context.Context) (V, bool, error)) (V, error) {
	v, err := c.flights.Do(ctx, flight, func(ctx context.Context) (any, error) {
		// A flight that ended just before this one began may have
		// stored the value after this caller missed it.
		c.mu.Lock()
		v, ok := c.fresh(key)
		c.mu.Unlock()
		if ok && (fresh == nil || fresh(v)) {
			return v, nil
		}
		v, keep, err := fetch(ctx)
		if err == nil && keep {
			c.Add(key, v)
		}
		return v, err
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return v.(V), nil
}

// Group runs one call per key for all concurrent callers, as singleflight
// does, but the call's context ends when its last caller has gone: no work
// goes on for nobody. The zero Group is ready.
type Group struct {
	mu    sync.Mutex
	calls map[string]*flight
}

type flight struct {
	done    chan struct{}
	value   any
	err     error
	waiters int
	cancel  context.CancelFunc
}

// Do returns fn's result for key. fn runs on a goroutine of its own, in a
// context that keeps the first caller's values (so they must be safe to
// share: never a request's Caddy Replacer) and is cancelled when no caller
// waits anymore. A caller that leaves gets its context's error.
func (g *Group) Do(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[string]*flight)
	}
	f, ok := g.calls[key]
	if !ok {
		callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = f
		go func() {
			f.value, f.err = fn(callCtx)
			g.forget(key, f)
			cancel()
			close(f.done)
		}()
	}
	f.waiters++
	g.mu.Unlock()

	select {
	case <-f.done:
		return f.value, f.err
	case <-ctx.Done():
		g.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			f.cancel()
			if g.calls[key] == f {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (g *Group) forget(key string, f *flight) {
	g.mu.Lock()
	if g.calls[key] == f {
		delete(g.calls, key)
	}
	g.mu.Unlock()
}
