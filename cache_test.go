package caddyauthkit

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestCacheEvictsLeastRecentlyUsedAndExpires(t *testing.T) {
	c := newCache[string](3, time.Minute)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	evicted := 0
	c.onEvict = func() { evicted++ }
	has := func(k string) bool { _, ok := c.get(k); return ok }

	for _, k := range []string{"1", "2", "3"} {
		c.add(k, k)
	}
	has("1") // 1 is now the most recent; 2 the least
	c.add("4", "4")
	if c.len() != 3 || has("2") || !has("1") || !has("3") || !has("4") || evicted != 1 {
		t.Fatalf("after eviction: len %d, %d evicted", c.len(), evicted)
	}
	now = now.Add(2 * time.Minute)
	if has("1") || c.len() != 2 {
		t.Fatalf("an expired answer was still believed (len %d)", c.len())
	}
	c.remove("3")
	if has("3") {
		t.Fatal("a removed answer was still believed")
	}
}

func TestOwnerCacheKeySeparatesIdentityTypeAndKey(t *testing.T) {
	a := ownerCacheKey(identity{ID: "acme", Type: "user"}, ownsKey, "k")
	for _, other := range []string{
		ownerCacheKey(identity{ID: "acme", Type: "team"}, ownsKey, "k"),
		ownerCacheKey(identity{ID: "acme", Type: "user"}, ownsKey, "k2"),
		ownerCacheKey(identity{ID: "acme", Type: "user"}, resolvesName, "k"),
		ownerCacheKey(identity{ID: "acm", Type: "user"}, ownsKey, "ek"), // no ambiguity across the separator
	} {
		if other == a {
			t.Fatal("two different answers share a cache key")
		}
	}
}

// TestOwnershipCacheStaysBoundedWithAMillionKeys: memory is set by the
// configured size, not by how many distinct keys callers try.
func TestOwnershipCacheStaysBoundedWithAMillionKeys(t *testing.T) {
	const size = 10_000
	c := newCache[string](size, time.Minute)
	before := liveHeap()
	for i := 0; i < 1_000_000; i++ {
		c.add(ownerCacheKey(identity{ID: strconv.Itoa(i), Type: "user"}, ownsKey, "test::gmail::default::0"), "k")
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
