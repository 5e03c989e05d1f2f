package cache

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestCacheEvictsLeastRecentlyUsedAndExpires(t *testing.T) {
	c := New[string](3, time.Minute)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	evicted := 0
	c.OnEvict = func() { evicted++ }
	has := func(k string) bool { _, ok := c.Get(k); return ok }

	for _, k := range []string{"1", "2", "3"} {
		c.Add(k, k)
	}
	has("1") // 1 is now the most recent; 2 the least
	c.Add("4", "4")
	if c.order.Len() != 3 || has("2") || !has("1") || !has("3") || !has("4") || evicted != 1 {
		t.Fatalf("after eviction: len %d, %d evicted", c.order.Len(), evicted)
	}
	now = now.Add(2 * time.Minute)
	if has("1") || c.order.Len() != 2 {
		t.Fatalf("an expired answer was still believed (len %d)", c.order.Len())
	}
}

// TestFetchReplacesAStaleValueWhereItStood: a value fresh refuses is
// fetched again and stored under the same key, so no stale copy stays.
func TestFetchReplacesAStaleValueWhereItStood(t *testing.T) {
	c := New[string](10, time.Minute)
	fetches := 0
	fetch := func(v string) func(context.Context) (string, bool, error) {
		return func(context.Context) (string, bool, error) { fetches++; return v, true, nil }
	}
	isNew := func(v string) bool { return v == "new" }
	if v, _ := c.Fetch(context.Background(), "k", "k", isNew, fetch("old")); v != "old" || fetches != 1 {
		t.Fatalf("first load: %q after %d fetches", v, fetches)
	}
	if v, _ := c.Fetch(context.Background(), "k", "k", isNew, fetch("new")); v != "new" || fetches != 2 || c.Len() != 1 {
		t.Fatalf("a stale value: %q after %d fetches, %d entries", v, fetches, c.Len())
	}
	if v, _ := c.Fetch(context.Background(), "k", "k", isNew, fetch("newer")); v != "new" || fetches != 2 {
		t.Fatalf("a fresh value was fetched again: %q, %d fetches", v, fetches)
	}
}

// TestFlightGroupCancelsTheCallWhenEveryCallerHasLeft: callers share one
// call; the call goes on while one of them still waits, and its context is
// cancelled once the last has gone.
func TestFlightGroupCancelsTheCallWhenEveryCallerHasLeft(t *testing.T) {
	var g Group
	var callCtx context.Context
	started, finish := make(chan struct{}), make(chan struct{})
	fetch := func(ctx context.Context) (any, error) {
		callCtx = ctx
		close(started)
		<-ctx.Done()
		<-finish // held, so the test sees the group before the call ends
		return nil, ctx.Err()
	}
	first, leaveFirst := context.WithCancel(context.Background())
	second, leaveSecond := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := g.Do(first, "k", fetch); errs <- err }()
	<-started
	go func() {
		_, err := g.Do(second, "k", func(context.Context) (any, error) {
			t.Error("a second call ran for the same key")
			return nil, nil
		})
		errs <- err
	}()
	// The second caller is counted once it waits: poll the group's state.
	for {
		g.mu.Lock()
		waiters := g.calls["k"].waiters
		g.mu.Unlock()
		if waiters == 2 {
			break
		}
		runtime.Gosched()
	}

	leaveFirst()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left got %v, want context.Canceled", err)
	}
	if err := callCtx.Err(); err != nil {
		t.Fatalf("the call was cancelled (%v) while a caller still waited", err)
	}
	leaveSecond()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("the last caller got %v", err)
	}
	// The caller cancels the call before it returns.
	if err := callCtx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("the call's context is %v after every caller left, want context.Canceled", err)
	}
	// And the group forgets it at once: a new caller starts a new call
	// rather than joining a cancelled one.
	g.mu.Lock()
	stale := g.calls["k"] != nil
	g.mu.Unlock()
	if stale {
		t.Fatal("the abandoned call is still there for the next caller to join")
	}
	close(finish)
	if v, err := g.Do(context.Background(), "k", func(context.Context) (any, error) { return 42, nil }); v != 42 || err != nil {
		t.Fatalf("a new caller got %v, %v", v, err)
	}
}

// TestFlightGroupSharesOneResultAndForgetsIt: concurrent callers get the
// one call's value; a later caller starts a new call.
func TestFlightGroupSharesOneResultAndForgetsIt(t *testing.T) {
	var g Group
	release := make(chan struct{})
	calls := 0
	fetch := func(context.Context) (any, error) {
		calls++ // only ever one call in flight per key
		<-release
		return calls, nil
	}
	values := make(chan any, 2)
	for range 2 {
		go func() { v, _ := g.Do(context.Background(), "k", fetch); values <- v }()
	}
	for {
		g.mu.Lock()
		f := g.calls["k"]
		n := 0
		if f != nil {
			n = f.waiters
		}
		g.mu.Unlock()
		if n == 2 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	if a, b := <-values, <-values; a != 1 || b != 1 {
		t.Fatalf("callers got %v and %v, want the one call's 1", a, b)
	}
	if v, _ := g.Do(context.Background(), "k", fetch); v != 2 {
		t.Fatalf("a later caller got %v, want a new call's 2", v)
	}
}

// TestCacheLoadKeepsOnlyWhatFetchSaysToKeep: a value fetched with keep
// false (an error answer, say) is not remembered.
func TestCacheLoadKeepsOnlyWhatFetchSaysToKeep(t *testing.T) {
	c := New[int](10, time.Minute)
	n := 0
	fetch := func(keep bool) func(context.Context) (int, bool, error) {
		return func(context.Context) (int, bool, error) { n++; return n, keep, nil }
	}
	if v, _ := c.Load(context.Background(), "k", fetch(false)); v != 1 {
		t.Fatalf("got %d", v)
	}
	if v, _ := c.Load(context.Background(), "k", fetch(true)); v != 2 {
		t.Fatalf("an answer not to keep was kept: got %d", v)
	}
	if v, _ := c.Load(context.Background(), "k", fetch(true)); v != 2 {
		t.Fatalf("a kept answer was fetched again: got %d", v)
	}
	if _, err := c.Load(context.Background(), "e", func(context.Context) (int, bool, error) {
		return 0, true, errors.New("vendor down")
	}); err == nil {
		t.Fatal("the fetch's error was lost")
	}
	if _, ok := c.Get("e"); ok {
		t.Fatal("a failed fetch was cached")
	}
}

// TestUpdateIsOneStep: concurrent updates never lose one another, and an
// update counts as no lookup.
func TestUpdateIsOneStep(t *testing.T) {
	c := New[int](10, time.Minute)
	lookups := 0
	c.OnLookup = func(bool) { lookups++ }
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				c.Update("n", func(old int, ok bool) int { return old + 1 })
			}
		})
	}
	wg.Wait()
	if n, _ := c.Get("n"); n != 4000 || lookups != 1 {
		t.Fatalf("%d after 4000 updates, %d lookups counted", n, lookups)
	}
	now := time.Now()
	c.now = func() time.Time { return now.Add(2 * time.Minute) }
	if v := c.Update("n", func(old int, ok bool) int {
		if ok {
			t.Error("an expired value was handed to Update")
		}
		return 1
	}); v != 1 {
		t.Fatalf("Update returned %d", v)
	}
}
