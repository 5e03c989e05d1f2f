package caddyauthkit

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

func newTestCache(t testing.TB, size int, ttl time.Duration) *ownershipCache {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return newOwnershipCache(size, ttl, m)
}

func TestOwnershipCacheEvictsLeastRecentlyUsedAndExpires(t *testing.T) {
	c := newTestCache(t, 3, time.Minute)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	key := func(i int) ownerKey { return newOwnerKey(identity{ID: "u" + strconv.Itoa(i), Type: "user"}, "k") }

	for i := 1; i <= 3; i++ {
		c.add(key(i))
	}
	c.has(key(1)) // 1 is now the most recent; 2 the least
	c.add(key(4))
	if c.len() != 3 || c.has(key(2)) || !c.has(key(1)) || !c.has(key(3)) || !c.has(key(4)) {
		t.Fatalf("after eviction: len %d", c.len())
	}
	now = now.Add(2 * time.Minute)
	if c.has(key(1)) || c.len() != 2 {
		t.Fatalf("an expired answer was still believed (len %d)", c.len())
	}
	c.forget(key(3))
	if c.has(key(3)) {
		t.Fatal("a forgotten answer was still believed")
	}
}

func TestOwnerKeySeparatesIdentityTypeAndKey(t *testing.T) {
	a := newOwnerKey(identity{ID: "acme", Type: "user"}, "k")
	for _, other := range []ownerKey{
		newOwnerKey(identity{ID: "acme", Type: "team"}, "k"),
		newOwnerKey(identity{ID: "acme", Type: "user"}, "k2"),
		newOwnerKey(identity{ID: "acm", Type: "user"}, "ek"), // no ambiguity across the separator
	} {
		if other == a {
			t.Fatal("two different owners share a cache key")
		}
	}
}

// TestOwnershipCacheStaysBoundedWithAMillionKeys: memory is set by the
// configured size, not by how many distinct keys callers try.
func TestOwnershipCacheStaysBoundedWithAMillionKeys(t *testing.T) {
	const size = 10_000
	c := newTestCache(t, size, time.Minute)
	before := liveHeap()
	for i := 0; i < 1_000_000; i++ {
		c.add(newOwnerKey(identity{ID: strconv.Itoa(i), Type: "user"}, "test::gmail::default::0"))
	}
	grown := int64(liveHeap()) - int64(before)
	if c.len() != size {
		t.Fatalf("cache holds %d entries, bound %d", c.len(), size)
	}
	if perEntry := grown / size; perEntry > 256 {
		t.Fatalf("%d bytes per entry", perEntry)
	}
	t.Logf("%d entries: %d KiB (%d bytes each)", size, grown>>10, grown/size)
	runtime.KeepAlive(c)
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
