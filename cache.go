package caddyauthkit

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// cache keeps values for a TTL, the least recently used out first once it
// holds max entries. Concurrent misses of one key share one fetch.
type cache[V any] struct {
	mu      sync.Mutex
	entries map[string]*list.Element
	order   *list.List // front: most recently used
	max     int
	ttl     time.Duration
	now     func() time.Time
	flights flightGroup

	// onLookup and onEvict feed the metrics; nil for none.
	onLookup func(hit bool)
	onEvict  func()
}

type cacheEntry[V any] struct {
	key     string
	value   V
	expires time.Time
}

func newCache[V any](max int, ttl time.Duration) *cache[V] {
	return &cache[V]{entries: make(map[string]*list.Element), order: list.New(), max: max, ttl: ttl, now: time.Now}
}

// get returns the value of key if it is there and fresh.
func (c *cache[V]) get(key string) (V, bool) {
	c.mu.Lock()
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
	c.mu.Unlock()
	if c.onLookup != nil {
		c.onLookup(ok)
	}
	return value, ok
}

// add stores value under key for the TTL.
func (c *cache[V]) add(key string, value V) {
	expires := c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
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
		if c.onEvict != nil {
			c.onEvict()
		}
	}
	c.entries[key] = c.order.PushFront(&cacheEntry[V]{key: key, value: value, expires: expires})
}

// removeIf forgets every entry whose key matches.
func (c *cache[V]) removeIf(match func(key string) bool) {
	c.mu.Lock()
	for key, el := range c.entries {
		if match(key) {
			c.order.Remove(el)
			delete(c.entries, key)
		}
	}
	c.mu.Unlock()
}

func (c *cache[V]) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.order.Init()
	c.mu.Unlock()
}

// load returns the cached value of key, or fetches it once for every
// concurrent caller. fetch says whether its value may be cached.
func (c *cache[V]) load(ctx context.Context, key string, fetch func(context.Context) (V, bool, error)) (V, error) {
	if v, ok := c.get(key); ok {
		return v, nil
	}
	v, err := c.flights.do(ctx, key, func(ctx context.Context) (any, error) {
		v, keep, err := fetch(ctx)
		if err == nil && keep {
			c.add(key, v)
		}
		return v, err
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return v.(V), nil
}

// flightGroup runs one call per key for all concurrent callers, as
// singleflight does, but the call's context ends when its last caller has
// gone: no work goes on for nobody.
type flightGroup struct {
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

// do returns fn's result for key. fn runs in its own context, which keeps
// the first caller's values and is cancelled when no caller waits anymore.
// A caller that leaves gets errClientGone.
func (g *flightGroup) do(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
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
		return nil, errClientGone
	}
}

func (g *flightGroup) forget(key string, f *flight) {
	g.mu.Lock()
	if g.calls[key] == f {
		delete(g.calls, key)
	}
	g.mu.Unlock()
}
