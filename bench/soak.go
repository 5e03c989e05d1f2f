package main

// The soak: rounds of mixed requests against one authkit process, whose
// goroutines and heap are read through its admin API after a GC, at a
// baseline (after a warm-up round) and after each measured round.
//
//	go run ./bench -soak [-soak-requests 100000] [-soak-rounds 2] [-soak-profiles dir]
//
// Every answer must carry a status expected of its kind (and, for some
// kinds, a header or body that shows it is the right answer): anything else,
// or a transport error, fails the soak. So does growth of the goroutines or
// of the live heap from the first measured round to the last beyond
// -soak-tolerance. The exit status is 1 on failure.

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	soakMode       = flag.Bool("soak", false, "run the soak (bench/soak.go) instead of the comparisons")
	soakRequests   = flag.Int("soak-requests", 100_000, "requests in each measured soak round")
	soakWarmup     = flag.Int("soak-warmup", 20_000, "requests in the soak's warm-up round, before the baseline")
	soakRounds     = flag.Int("soak-rounds", 2, "measured soak rounds")
	soakWorkers    = flag.Int("soak-workers", 64, "concurrent callers in the soak")
	soakIdentities = flag.Int("soak-identities", 500, "identities the soak's callers take turns with (the same in every round)")
	soakLatency    = flag.Duration("soak-latency", 2*time.Millisecond, "sandbox latency per Pica call in the soak")
	soakTolerance  = flag.Float64("soak-tolerance", 0.05, "growth of goroutines and live heap from the first measured round to the last that still counts as flat")
	soakProfiles   = flag.String("soak-profiles", "", "keep the authkit process's goroutine and heap profiles of each checkpoint in this directory")
	soakMemRate    = flag.Int("soak-memprofilerate", 0, "sample one heap allocation in this many bytes in the authkit process (GODEBUG=memprofilerate; default Go's 512 KiB, too coarse to tell what a heap of a few MiB holds)")
	soakOption     = flag.String("soak-option", "", "extra lines in every authkit block of the soak, separated by ; (such as ownership_cache_size 5000)")
	soakWithout    = flag.String("soak-without", "", "leave these operations out of the mix (comma-separated names of soakOps, such as delete)")
)

// Loopback ports of the soak; the comparisons use 191xx to 194xx and 19999.
const (
	soakSandboxPort = 19500 // the sandbox: 300 connectors (3 token pages)
	soakAuthkitPort = 19600 // authkit in front of it
	soakAdminPort   = 19599 // the authkit process's admin API
)

// soakFaults are sandboxes whose faults make part of the traffic fail, each
// with an authkit site in front: sandbox on 19500+n, authkit on 19600+n.
var soakFaults = []struct {
	kind, endpoint, fault, option string
}{
	{"vendor 503", "*", `{"status":503}`, ""},                           // every call: 502
	{"vendor 429", "passthrough", `{"status":429,"retry_after":1}`, ""}, // 429 with Retry-After
	{"vendor garbage", "token", `{"garbage":true}`, ""},                 // a 200 that is not JSON: 502
	{"vendor reset", "vault_list", `{"reset":true}`, ""},                // a dropped connection: 502
	{"vendor timeout", "*", `{"delay":"2s"}`, "timeout 200ms"},          // no answer in time: 504
}

// planned is one operation of a round's plan.
type planned struct {
	op, variant, user int
}

// plan draws a round's operations, seeded by the round, so that they make
// exactly n requests.
func plan(round, n, users int) []planned {
	rng := rand.New(rand.NewPCG(17, uint64(round)))
	total := 0
	for _, op := range soakOps {
		total += op.weight
	}
	left := map[string]bool{}
	for _, name := range strings.Split(*soakWithout, ",") {
		left[strings.TrimSpace(name)] = true
	}
	var out []planned
	for sent, misses := 0, 0; sent < n && misses < 1000; misses++ { // misses: no operation the mix keeps fits what is left
		pick := rng.IntN(total)
		i := 0
		for pick >= soakOps[i].weight {
			pick -= soakOps[i].weight
			i++
		}
		if left[soakOps[i].name] {
			continue
		}
		variant := 0
		if soakOps[i].variants > 0 {
			variant = rng.IntN(soakOps[i].variants)
		}
		if sent+soakOps[i].reqs(variant) > n {
			continue
		}
		sent += soakOps[i].reqs(variant)
		out = append(out, planned{i, variant, rng.IntN(users)})
		misses = -1
	}
	return out
}

// roundResult is what one round measured at the client.
type roundResult struct {
	stats   map[string]*kindStats
	elapsed time.Duration
	cpu     time.Duration
}

func (r roundResult) problems() int {
	n := 0
	for _, s := range r.stats {
		for _, count := range s.problems {
			n += count
		}
	}
	return n
}

func (r roundResult) requests() int {
	n := 0
	for _, s := range r.stats {
		n += s.requests
	}
	return n
}

// runRound sends the round's plan with workers concurrent callers.
func runRound(round, n int, users []*soakUser, authkit *process) roundResult {
	ops := plan(round, n, len(users))
	var next atomic.Int64
	var wg sync.WaitGroup
	callers := make([]*caller, *soakWorkers)
	cpu := authkit.cpu()
	start := time.Now()
	for w := range callers {
		c := &caller{stats: map[string]*kindStats{}}
		callers[w] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ops) {
					return
				}
				p := ops[i]
				soakOps[p.op].run(c, users[p.user], p.variant)
			}
		}()
	}
	wg.Wait()
	result := roundResult{stats: map[string]*kindStats{}, elapsed: time.Since(start), cpu: authkit.cpu() - cpu}
	for _, c := range callers {
		for name, s := range c.stats {
			into := result.stats[name]
			if into == nil {
				into = &kindStats{statuses: map[int]int{}, problems: map[string]int{}}
				result.stats[name] = into
			}
			into.requests += s.requests
			for k, v := range s.statuses {
				into.statuses[k] += v
			}
			for k, v := range s.problems {
				into.problems[k] += v
			}
		}
	}
	return result
}

// addConnection connects platform for identity in the sandbox on port.
func addConnection(port int, identity, platform string) (struct{ ID, Key string }, error) {
	var conn struct{ ID, Key string }
	body := fmt.Sprintf(`{"platform":%q,"identity":%q}`, platform, identity)
	res, err := soakClient.Post(fmt.Sprintf("http://127.0.0.1:%d/sandbox/connections", port), "application/json", strings.NewReader(body))
	if err != nil {
		return conn, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return conn, fmt.Errorf("sandbox answered %d", res.StatusCode)
	}
	return conn, json.NewDecoder(res.Body).Decode(&conn)
}

func setFault(port int, endpoint, fault string) {
	req, _ := http.NewRequest("PUT", fmt.Sprintf("http://127.0.0.1:%d/sandbox/faults/%s", port, endpoint), strings.NewReader(fault))
	res, err := soakClient.Do(req)
	check(err)
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		check(fmt.Errorf("setting fault %s on %d: %d", fault, port, res.StatusCode))
	}
}

// soak runs the soak and returns the exit status.
func soak(bin string) int {
	for _, name := range strings.Split(*soakWithout, ",") {
		if name = strings.TrimSpace(name); name != "" && !slices.ContainsFunc(soakOps, func(op soakOp) bool { return op.name == name }) {
			check(fmt.Errorf("-soak-without: no operation named %q", name))
		}
	}
	dir := *soakProfiles
	if dir == "" {
		dir = filepath.Join(tempDir, "profiles")
	}
	check(os.MkdirAll(dir, 0o755))

	sandboxSite := func(port int) string {
		return fmt.Sprintf("http://127.0.0.1:%d {\n\tpica_sandbox {\n\t\tsecret %s\n\t\tconnectors 300\n\t\tlatency %s\n\t}\n}\n", port, secret, *soakLatency)
	}
	sites := []string{sandboxSite(soakSandboxPort)}
	options := strings.Join(strings.Split(*soakOption, ";"), "\n\t\t")
	plugin := []string{authkitSite(soakAuthkitPort, soakSandboxPort, options)}
	for i, f := range soakFaults {
		sites = append(sites, sandboxSite(soakSandboxPort+1+i))
		plugin = append(plugin, authkitSite(soakAuthkitPort+1+i, soakSandboxPort+1+i, strings.TrimSpace(f.option+"\n\t\t"+options)))
	}
	start(tempDir, bin, "soak sandbox", "{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n}\n"+strings.Join(sites, ""))
	// The audit trail goes to a file, as the README shows; the admin API
	// serves the process's profiles.
	var env []string
	if *soakMemRate > 0 {
		env = append(env, fmt.Sprintf("GODEBUG=memprofilerate=%d", *soakMemRate))
	}
	authkit := start(tempDir, bin, "authkit", fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tauto_https off\n"+
		"\tlog audit {\n\t\tinclude http.handlers.authkit.audit\n\t\toutput file %s\n\t}\n"+
		"\tlog default {\n\t\texclude http.handlers.authkit.audit\n\t}\n}\n", soakAdminPort, filepath.Join(tempDir, "audit.log"))+strings.Join(plugin, ""), env...)
	for i := range soakFaults {
		waitPort(soakSandboxPort + 1 + i)
		waitPort(soakAuthkitPort + 1 + i)
	}
	waitPort(soakSandboxPort)
	waitPort(soakAuthkitPort)
	waitPort(soakAdminPort)

	fmt.Printf("soak: %d identities, each with a gmail connection ...\n", *soakIdentities)
	users := make([]*soakUser, *soakIdentities)
	for i := range users {
		u := &soakUser{name: fmt.Sprintf("soak-user-%d", i), deleter: fmt.Sprintf("soak-deleter-%d", i%50)}
		conn, err := addConnection(soakSandboxPort, u.name, "gmail")
		check(err)
		u.key = conn.Key
		conn, err = addConnection(soakSandboxPort+2, u.name, "gmail")
		check(err)
		u.key429 = conn.Key
		users[i] = u
	}
	for i, u := range users {
		u.foreign = users[(i+1)%len(users)].key
	}
	for i, f := range soakFaults {
		setFault(soakSandboxPort+1+i, f.endpoint, f.fault)
		fmt.Printf("soak: %s: authkit on %d, its sandbox fails %s calls with %s\n", f.kind, soakAuthkitPort+1+i, f.endpoint, f.fault)
	}

	fmt.Printf("soak: warm-up round, %d requests ...\n", *soakWarmup)
	warmup := runRound(0, *soakWarmup, users, authkit)
	fmt.Printf("soak: warm-up took %s, %d problems\n", warmup.elapsed.Round(time.Millisecond), warmup.problems())
	checkpoints := []checkpoint{takeCheckpoint("baseline", authkit, dir)}
	printCheckpoint(checkpoints[0])
	var results []roundResult
	for r := 1; r <= *soakRounds; r++ {
		fmt.Printf("soak: round %d, %d requests, %d callers ...\n", r, *soakRequests, *soakWorkers)
		res := runRound(r, *soakRequests, users, authkit)
		results = append(results, res)
		fmt.Printf("soak: round %d took %s (%.0f req/s, authkit CPU %s), %d problems\n", r, res.elapsed.Round(time.Millisecond),
			float64(res.requests())/res.elapsed.Seconds(), res.cpu.Round(10*time.Millisecond), res.problems())
		checkpoints = append(checkpoints, takeCheckpoint(fmt.Sprintf("after round %d", r), authkit, dir))
		printCheckpoint(checkpoints[len(checkpoints)-1])
	}
	ok := printSoakReport(warmup, results, checkpoints)
	if *soakProfiles != "" {
		fmt.Printf("\nprofiles of each checkpoint in %s (go tool pprof -sample_index=inuse_space -top -diff_base %s %s)\n",
			dir, checkpoints[1].heapFile, checkpoints[len(checkpoints)-1].heapFile)
	}
	if !ok {
		return 1
	}
	return 0
}
