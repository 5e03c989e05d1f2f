package main

// The soak's checkpoints (goroutines and heap after GC, read from the
// admin API) and its report.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// checkpoint is the authkit process's state after GC.
type checkpoint struct {
	name        string
	goroutines  int
	byStart     map[string]int // goroutines by the function they started in
	heapAlloc   uint64         // live bytes after GC
	heapInuse   uint64         // bytes in in-use spans
	heapObjects uint64
	rss         float64 // MiB, as the kernel sees it (GC does not return it at once)
	misses      float64 // ownership cache misses so far (caddy_authkit_ownership_cache_lookups_total)
	evictions   float64 // answers evicted from a full ownership cache so far
	heapFile    string  // its heap profile
}

var adminClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}

func admin(path string) []byte {
	res, err := adminClient.Get(fmt.Sprintf("http://127.0.0.1:%d%s", soakAdminPort, path))
	check(err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	check(err)
	if res.StatusCode != http.StatusOK {
		check(fmt.Errorf("admin %s: %d %s", path, res.StatusCode, data))
	}
	return data
}

var (
	goroutineTotal = regexp.MustCompile(`^goroutine profile: total (\d+)`)
	memStat        = regexp.MustCompile(`(?m)^# (\w+) = (\d+)$`)
)

// goroutines reads the goroutine profile: the total, and the goroutines by
// the function each started in (the last frame of its stack).
func goroutines() (int, map[string]int, []byte) {
	data := admin("/debug/pprof/goroutine?debug=1")
	m := goroutineTotal.FindSubmatch(data)
	if m == nil {
		check(fmt.Errorf("unexpected goroutine profile: %.200s", data))
	}
	total, _ := strconv.Atoi(string(m[1]))
	byStart := map[string]int{}
	count, start, idle := 0, "", false
	flush := func() {
		if count > 0 {
			if idle {
				start += " (idle)"
			}
			byStart[start] += count
		}
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[1] == "@":
			flush()
			count, _ = strconv.Atoi(f[0])
			start, idle = "?", false
		case len(f) >= 3 && f[0] == "#" && strings.HasPrefix(f[1], "0x"):
			start = f[2] // the last frame is where the goroutine started
			if i := strings.LastIndexByte(start, '+'); i > 0 {
				start = start[:i]
			}
			// A client connection's read loop waiting for the first byte
			// of an answer: with nothing in flight, a pooled idle connection.
			idle = idle || start == "bufio.(*Reader).Peek"
		}
	}
	flush()
	return total, byStart, data
}

// takeCheckpoint waits for the process's goroutines to settle once the soak's
// connections are closed, then reads them, and its heap after GC three
// times (sync.Pool keeps a victim cache through one GC), keeping the least.
func takeCheckpoint(name string, p *process, dir string) checkpoint {
	soakClient.CloseIdleConnections()
	last, same := -1, 0
	for deadline := time.Now().Add(30 * time.Second); same < 4 && time.Now().Before(deadline); {
		n, _, _ := goroutines()
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
		time.Sleep(250 * time.Millisecond)
	}
	cp := checkpoint{name: name}
	var profile []byte
	cp.goroutines, cp.byStart, profile = goroutines()
	for i := 0; i < 3; i++ {
		stats := map[string]uint64{}
		for _, m := range memStat.FindAllSubmatch(admin("/debug/pprof/heap?gc=1&debug=1"), -1) {
			stats[string(m[1])], _ = strconv.ParseUint(string(m[2]), 10, 64)
		}
		if i == 0 || stats["HeapAlloc"] < cp.heapAlloc {
			cp.heapAlloc, cp.heapInuse, cp.heapObjects = stats["HeapAlloc"], stats["HeapInuse"], stats["HeapObjects"]
		}
	}
	cp.rss = p.rss()
	for _, line := range strings.Split(string(admin("/metrics")), "\n") {
		name, value, _ := strings.Cut(line, " ")
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case `caddy_authkit_ownership_cache_lookups_total{result="miss"}`:
			cp.misses += v
		case "caddy_authkit_ownership_cache_evictions_total":
			cp.evictions += v
		}
	}
	file := strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(name)
	cp.heapFile = filepath.Join(dir, file+".heap.pb.gz")
	check(os.WriteFile(cp.heapFile, admin("/debug/pprof/heap?gc=1"), 0o644))
	check(os.WriteFile(filepath.Join(dir, file+".goroutines.txt"), profile, 0o644))
	return cp
}

// maxIdlePerHost is the default bound of idle connections per upstream of
// Caddy's HTTP transport (reverseproxy.HTTPTransport), which authkit uses.
const maxIdlePerHost = 32

// idleConns is the number of pooled idle client connections.
func (c checkpoint) idleConns() int { return c.byStart["net/http.(*persistConn).readLoop (idle)"] }

// others are the goroutines besides the two of each idle connection.
func (c checkpoint) others() int { return c.goroutines - 2*c.idleConns() }

func printCheckpoint(c checkpoint) {
	fmt.Printf("soak: %s: %d goroutines (%d idle upstream connections), HeapAlloc %s, HeapInuse %s, %d objects, RSS %.1f MiB\n",
		c.name, c.goroutines, c.idleConns(), mib(c.heapAlloc), mib(c.heapInuse), c.heapObjects, c.rss)
}

func mib(b uint64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }

func growth(from, to float64) string {
	return fmt.Sprintf("%+.1f%%", 100*(to-from)/from)
}

// printSoakReport prints the soak's tables and verdict, and reports whether
// it passed.
func printSoakReport(warmup roundResult, results []roundResult, cps []checkpoint) bool {
	rounds := append([]roundResult{warmup}, results...)
	fmt.Printf("\nsandbox latency %s per Pica call, %d identities, %d callers; warm-up %d requests, then %d rounds of %d\n\n",
		*soakLatency, *soakIdentities, *soakWorkers, *soakWarmup, len(results), *soakRequests)
	header := "| kind | expected |"
	rule := "| --- | --- |"
	for i := range rounds {
		name := fmt.Sprintf("round %d", i)
		if i == 0 {
			name = "warm-up"
		}
		header += " " + name + ": requests | statuses |"
		rule += " --- | --- |"
	}
	fmt.Println(header + " problems |")
	fmt.Println(rule + " --- |")
	var problems []string
	for _, kind := range kindOrder {
		line := fmt.Sprintf("| %s | %s |", kind, joinInts(expected[kind]))
		bad := 0
		for i, r := range rounds {
			s := r.stats[kind]
			if s == nil {
				line += " 0 | |"
				continue
			}
			var codes []int
			for code := range s.statuses {
				codes = append(codes, code)
			}
			sort.Ints(codes)
			var parts []string
			for _, code := range codes {
				parts = append(parts, fmt.Sprintf("%d: %d", code, s.statuses[code]))
			}
			line += fmt.Sprintf(" %d | %s |", s.requests, strings.Join(parts, ", "))
			for what, n := range s.problems {
				bad += n
				round := fmt.Sprintf("round %d", i)
				if i == 0 {
					round = "warm-up"
				}
				problems = append(problems, fmt.Sprintf("%s, %s: %d × %s", round, kind, n, what))
			}
		}
		fmt.Printf("%s %d |\n", line, bad)
	}
	total := "| all | |"
	for _, r := range rounds {
		total += fmt.Sprintf(" %d | %.1f s, %.0f req/s, authkit CPU %.0f µs/req |", r.requests(), r.elapsed.Seconds(),
			float64(r.requests())/r.elapsed.Seconds(), float64(r.cpu.Microseconds())/float64(r.requests()))
	}
	fmt.Println(total + " |")
	sort.Strings(problems)
	for _, p := range problems {
		fmt.Println("problem:", p)
	}

	fmt.Println("\n| checkpoint (after GC) | goroutines | idle upstream connections | other goroutines | HeapAlloc (live) | HeapInuse | heap objects | RSS | ownership cache misses, evictions so far |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, c := range cps {
		fmt.Printf("| %s | %d | %d | %d | %s | %s | %d | %.1f MiB | %.0f, %.0f |\n", c.name, c.goroutines, c.idleConns(), c.others(),
			mib(c.heapAlloc), mib(c.heapInuse), c.heapObjects, c.rss, c.misses, c.evictions)
	}
	first, last := cps[1], cps[len(cps)-1]
	for _, from := range []checkpoint{cps[0], first} {
		fmt.Printf("| %s → %s | %+d | %+d | %+d | %s | %s | %s | | |\n", from.name, last.name, last.goroutines-from.goroutines,
			last.idleConns()-from.idleConns(), last.others()-from.others(),
			growth(float64(from.heapAlloc), float64(last.heapAlloc)), growth(float64(from.heapInuse), float64(last.heapInuse)),
			growth(float64(from.heapObjects), float64(last.heapObjects)))
	}

	// Goroutines by where they started, where any checkpoint has a few.
	starts := map[string]bool{}
	for _, c := range cps {
		for s, n := range c.byStart {
			if n >= 2 {
				starts[s] = true
			}
		}
	}
	var names []string
	for s := range starts {
		names = append(names, s)
	}
	sort.Slice(names, func(i, j int) bool { return last.byStart[names[i]] > last.byStart[names[j]] })
	fmt.Print("\n| goroutines started in |")
	for _, c := range cps {
		fmt.Printf(" %s |", c.name)
	}
	fmt.Print("\n| --- |" + strings.Repeat(" --- |", len(cps)) + "\n")
	for _, s := range names {
		fmt.Printf("| %s |", s)
		for _, c := range cps {
			fmt.Printf(" %d |", c.byStart[s])
		}
		fmt.Println()
	}

	tol := *soakTolerance
	// Idle pooled connections to the vendor come and go with the traffic's
	// peaks, up to the bound of Caddy's transport: each holds two
	// goroutines. The others must not grow.
	slack := max(1, int(tol*float64(first.others())))
	idleBound := maxIdlePerHost * (1 + len(soakFaults))
	goFlat := last.others()-first.others() <= slack && last.idleConns() <= idleBound
	heapFlat := float64(last.heapAlloc) <= float64(first.heapAlloc)*(1+tol)
	fmt.Println()
	verdict := func(ok bool, what string) {
		word := "PASS"
		if !ok {
			word = "FAIL"
		}
		fmt.Printf("%s  %s\n", word, what)
	}
	verdict(len(problems) == 0, fmt.Sprintf("every answer as expected (%d problems)", len(problems)))
	verdict(goFlat, fmt.Sprintf("goroutines flat from %s to %s: %d → %d besides idle upstream connections (at most +%d), which are %d → %d (bound %d); in all %d → %d (%s)",
		first.name, last.name, first.others(), last.others(), slack, first.idleConns(), last.idleConns(), idleBound,
		first.goroutines, last.goroutines, growth(float64(first.goroutines), float64(last.goroutines))))
	verdict(heapFlat, fmt.Sprintf("live heap flat from %s to %s: %s → %s (%s, tolerance %.0f%%)", first.name, last.name,
		mib(first.heapAlloc), mib(last.heapAlloc), growth(float64(first.heapAlloc), float64(last.heapAlloc)), 100*tol))
	if !heapFlat || !goFlat {
		// What grew: the heap profiles' difference, by allocation site.
		out, err := exec.Command("go", "tool", "pprof", "-sample_index=inuse_space", "-top", "-nodecount=20",
			"-diff_base", first.heapFile, last.heapFile).CombinedOutput()
		fmt.Printf("\nlive heap, %s → %s (go tool pprof -diff_base):\n%s", first.name, last.name, out)
		if *soakMemRate == 0 {
			fmt.Println("(Go samples one allocation in 512 KiB by default: rerun with -soak-memprofilerate 4096 to tell what grew)")
		}
		if err != nil {
			fmt.Println("pprof:", err)
		}
	}
	return len(problems) == 0 && goFlat && heapFlat
}

func joinInts(list []int) string {
	var parts []string
	for _, v := range list {
		parts = append(parts, strconv.Itoa(v))
	}
	return strings.Join(parts, ", ")
}
