package caddyauthkit

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
	"go.uber.org/zap"
)

func TestOwnerCacheKeySeparatesIdentityTypeAndKey(t *testing.T) {
	a := ownerOf(identity{ID: "acme", Type: "user"}).key(ownsKey, "k")
	for _, other := range []string{
		ownerOf(identity{ID: "acme", Type: "team"}).key(ownsKey, "k"),
		ownerOf(identity{ID: "acme", Type: "user"}).key(ownsKey, "k2"),
		ownerOf(identity{ID: "acme", Type: "user"}).key(resolvesName, "k"),
		ownerOf(identity{ID: "acm", Type: "user"}).key(ownsKey, "ek"), // no ambiguity across the separator
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
	m, _ := newMetrics(nil)
	c := newOwners(nil, size, time.Minute, nil, zap.NewNop(), nil, m).cache
	before := liveHeap()
	for i := 0; i < 1_000_000; i++ {
		c.Add(ownerOf(identity{ID: strconv.Itoa(i), Type: "user"}).key(ownsKey, "test::gmail::default::0"), "k")
	}
	grown := int64(liveHeap()) - int64(before)
	if c.Len() != size {
		t.Fatalf("cache holds %d entries, bound %d", c.Len(), size)
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

// TestNotOwnedIsLoggedOnARealDenialByHashesOnly: the denial line appears on
// a real denial only, and names the caller and the key by keyed hashes.
func TestNotOwnedIsLoggedOnARealDenialByHashesOnly(t *testing.T) {
	g := startGateway(t, nil, "")
	start := len(readLog(t))

	// The caller's own key, twice (a miss, then a hit): no denial logged.
	own := map[string]string{"X-Pica-Connection-Key": g.alice.Key}
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", own), http.StatusOK, "")
	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", own), http.StatusOK, "")
	if n := len(logged(logLines(t, start), "connection key not owned by the caller")); n != 0 {
		t.Fatalf("%d denial lines for the caller's own key", n)
	}

	expect(t, g.as("alice", "GET", "/authkit/passthrough/x", map[string]string{"X-Pica-Connection-Key": g.bob.Key}),
		http.StatusForbidden, "connection_not_owned")
	denials := logged(logLines(t, start), "connection key not owned by the caller")
	if len(denials) != 1 {
		t.Fatalf("%d denial lines, want 1", len(denials))
	}
	if denials[0]["identity"] != logHash("user:alice") || denials[0]["connection_key"] != logHash(g.bob.Key) {
		t.Fatalf("denial line does not name caller and key by keyed hash: %v", denials[0])
	}
	raw, _ := json.Marshal(denials[0])
	if strings.Contains(string(raw), "alice") || strings.Contains(string(raw), g.bob.Key) {
		t.Fatalf("denial line names the caller or the key: %s", raw)
	}
}

func BenchmarkOwnershipCacheHit(b *testing.B) {
	m, _ := newMetrics(nil)
	o := newOwners(nil, DefaultOwnershipCacheSize, time.Minute, nil, zap.NewNop(), func(s string) string { return s }, m)
	id := identity{ID: "alice", Type: "user"}
	key := "test::gmail::default::106c889a50bc798e99b0ef4abb9d5e7b|alice"
	// The vault's answer, cached as check caches it.
	_, _ = o.load(context.Background(), ownerOf(id).key(ownsKey, key), o.currentEpochs(ownerOf(id)).deletes, func(context.Context) (string, bool, error) { return key, true, nil })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := o.check(context.Background(), id, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRenewAndForgetAtOnceNeverUndoEachOther: a forget outdates every
// answer even when a renew runs at the same moment (a read-then-write of
// both epochs would put the old deletes epoch back).
func TestRenewAndForgetAtOnceNeverUndoEachOther(t *testing.T) {
	m, _ := newMetrics(nil)
	o := newOwners(nil, 100, time.Minute, nil, zap.NewNop(), nil, m)
	id := identity{ID: "alice", Type: "user"}
	seen := map[string]bool{o.currentEpochs(ownerOf(id)).deletes: true}
	for range 200 {
		done := make(chan struct{})
		go func() { o.renew(id); close(done) }()
		o.forget(id)
		<-done
		deletes := o.currentEpochs(ownerOf(id)).deletes
		if seen[deletes] {
			t.Fatal("a forget was undone by a renew at the same moment")
		}
		seen[deletes] = true
	}
}

// TestOwnershipReadsPastTheVaultsFirstPage: where the vault is asked by
// platform (a key with a comma, keyless by platform), the caller's
// connection on page 2 of 100 rows is found, and all of them count.
func TestOwnershipReadsPastTheVaultsFirstPage(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	const carol = "uid=carol,ou=people"
	var last sandbox.Connection
	for range 150 {
		last = pica.AddConnection(carol, "user", "gmail")
	}
	g := startGatewayBehind(t, pica, nil, "", "")
	as := func(header map[string]string) response {
		header["X-Auth-User"], header["X-Auth-Type"] = carol, "user"
		return g.do(call{method: "GET", url: headerURL + "/authkit/passthrough/users/me", header: header})
	}
	expect(t, as(map[string]string{"X-Pica-Connection-Key": last.Key}), 200, "")
	res := as(map[string]string{"X-AuthKit-Connection": "gmail"})
	expect(t, res, 409, "connection_ambiguous")
	if n := len(res.json(t)["error"].(map[string]any)["connections"].([]any)); n != 150 {
		t.Fatalf("%d candidates named, want all 150", n)
	}
}

// TestEachOwnershipQuestionCountsOneLookup: a miss then a hit count one
// cache miss and one hit, whatever path each takes (the metrics' hit ratio
// depends on it).
func TestEachOwnershipQuestionCountsOneLookup(t *testing.T) {
	m, _ := newMetrics(nil)
	o := newOwners(nil, 100, time.Minute, nil, zap.NewNop(), nil, m)
	counted := map[bool]int{}
	o.cache.OnLookup = func(hit bool) { counted[hit]++ }
	id := identity{ID: "alice", Type: "user"}
	stamp := o.currentEpochs(ownerOf(id)).deletes
	key := ownerOf(id).key(ownsKey, "k")
	fetches := 0
	fetch := func(context.Context) (string, bool, error) { fetches++; return "owned", true, nil }
	for range 2 {
		if v, err := o.load(context.Background(), key, stamp, fetch); err != nil || v != "owned" {
			t.Fatalf("load: %q, %v", v, err)
		}
	}
	if fetches != 1 || counted[false] != 1 || counted[true] != 1 {
		t.Fatalf("%d fetches, %d misses and %d hits counted; want 1, 1, 1", fetches, counted[false], counted[true])
	}
}

// TestOwnershipReadsAtMostTenVaultPages: a key on the vault's tenth page of
// 100 rows is found; past it the question ends, and the key is not owned
// as far as the gateway can tell.
func TestOwnershipReadsAtMostTenVaultPages(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret})
	const carol = "uid=carol,ou=people" // a comma: looked up by identity and platform
	var keys []string
	for range maxVaultPages*100 + 1 {
		keys = append(keys, pica.AddConnection(carol, "user", "gmail").Key)
	}
	g := startGatewayBehind(t, pica, nil, "", "")
	as := func(key string) response {
		header := map[string]string{"X-Auth-User": carol, "X-Auth-Type": "user", "X-Pica-Connection-Key": key}
		return g.do(call{method: "GET", url: headerURL + "/authkit/passthrough/users/me", header: header})
	}
	expect(t, as(keys[maxVaultPages*100-1]), 200, "")
	expect(t, as(keys[maxVaultPages*100]), 403, "connection_not_owned")
}

// TestConnectionIDsAreReadInEitherCase: keyless takes a UUID as a
// connection id in upper or lower case, as UUIDs are read; anything else is
// a platform name.
func TestConnectionIDsAreReadInEitherCase(t *testing.T) {
	for id, want := range map[string]bool{
		"0123abcd-ef01-4a5b-8c9d-aabbccddeeff": true,
		"0123ABCD-EF01-4A5B-8C9D-AABBCCDDEEFF": true,
		"0123abcg-ef01-4a5b-8c9d-aabbccddeeff": false,
		"0123ABCG-EF01-4A5B-8C9D-AABBCCDDEEFF": false,
		"0123abcd-ef01-4a5b-8c9d-aabbccddeef":  false,
		"0123abcd_ef01-4a5b-8c9d-aabbccddeeff": false,
	} {
		if looksLikeUUID(id) != want {
			t.Errorf("looksLikeUUID(%q) = %v, want %v", id, !want, want)
		}
	}
}
