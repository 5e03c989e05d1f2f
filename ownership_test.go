package caddyauthkit

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

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
	if c.order.Len() != size {
		t.Fatalf("cache holds %d entries, bound %d", c.order.Len(), size)
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
