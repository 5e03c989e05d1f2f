// Command bench measures caddyauthkit against what users would otherwise run,
// in one run on one machine, over loopback:
//
//   - token route vs. the official Node SDK behind a minimal Node server, both
//     against the sandbox with the same latency per Pica call, for 1, 3 and
//     10 pages of connectors;
//   - passthrough (ownership on, cached) vs. bare Caddy reverse_proxy with
//     header_up x-pica-secret, to the same local upstream;
//   - passthrough with the audit trail on (to a file, as the README shows)
//     vs. audit off, and keyless (X-AuthKit-Connection, resolution cached)
//     vs. the key header, in the same authkit process;
//   - preflight vs. Caddy's own respond 204.
//
// Each side runs in its own process, so CPU time and peak RSS are its own.
// Runs are A/B interleaved and bounded in count and time.
//
//	go run ./bench [-latency 30ms] [-duration 3s] [-rounds 2]
//
// With -soak it runs the soak instead (soak.go): rounds of mixed requests
// against one authkit process, whose goroutines and heap are read after GC.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const secret = "sk_test_1_sandbox0000000000000000"

var (
	latency  = flag.Duration("latency", 30*time.Millisecond, "sandbox latency per Pica call")
	duration = flag.Duration("duration", 4*time.Second, "length of one throughput run")
	rounds   = flag.Int("rounds", 3, "A/B rounds per comparison")
	samples  = flag.Int("samples", 40, "sequential requests per latency run")
	only     = flag.String("only", "", "run only the comparisons whose name contains this (token, 200 callers, passthrough, keyless, preflight)")
	profile  = flag.String("profile", "", "write a CPU profile of the authkit process during its first measured run to this file (pick the run with -only)")
)

// pages are the page counts compared; 100 connectors make a page.
var pages = []int{1, 3, 10}

func main() {
	flag.Parse()
	dir, err := os.MkdirTemp("", "caddyauthkit-bench")
	check(err)
	defer os.RemoveAll(dir)
	tempDir = dir
	stopOnSignal()

	bin := build(dir)
	if *soakMode {
		defer func() { // a panic must not leave the processes running
			if r := recover(); r != nil {
				stopChildren()
				panic(r)
			}
		}()
		code := soak(bin)
		stopChildren()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	if _, err := os.Stat("testdata/node/node_modules/@picahq/authkit-token"); err != nil {
		run(exec.Command("npm", "ci", "--prefix", "testdata/node", "--no-audit", "--no-fund", "--loglevel=error"))
	}

	var sandboxSites, pluginSites, sdkPorts []string
	for _, p := range pages {
		sandboxSites = append(sandboxSites, fmt.Sprintf("http://127.0.0.1:%d {\n\tpica_sandbox {\n\t\tsecret %s\n\t\tconnectors %d\n\t\tlatency %s\n\t}\n}\n", 19100+p, secret, p*100, *latency))
		// The SDK's server takes the identity it is given, as the token
		// route does with ticket_only off (tickets are timed on their own).
		pluginSites = append(pluginSites, authkitSite(19200+p, 19100+p, "ticket_only off"))
		sdkPorts = append(sdkPorts, fmt.Sprintf("%d=http://127.0.0.1:%d", 19400+p, 19100+p))
	}
	global := "{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n}\n"
	sandbox := start(dir, bin, "sandbox", global+strings.Join(sandboxSites, "")+
		fmt.Sprintf("http://127.0.0.1:19100 {\n\tpica_sandbox {\n\t\tsecret %s\n\t\tconnection bench-user gmail\n\t}\n}\n", secret))
	admin := "admin off"
	if *profile != "" {
		admin = "admin localhost:19999"
	}
	// The audit trail goes to a file of its own, as the README shows.
	pluginGlobal := fmt.Sprintf("{\n\t%s\n\tpersist_config off\n\tauto_https off\n"+
		"\tlog audit {\n\t\tinclude http.handlers.authkit.audit\n\t\toutput file %s\n\t}\n"+
		"\tlog default {\n\t\texclude http.handlers.authkit.audit\n\t}\n}\n", admin, filepath.Join(dir, "audit.log"))
	plugin := start(dir, bin, "authkit", pluginGlobal+strings.Join(pluginSites, "")+
		authkitSite(19200, 19100, "")+authkitSite(19250, 19100, "audit off"))
	bare := start(dir, bin, "bare caddy", global+
		"http://127.0.0.1:19300 {\n\treverse_proxy 127.0.0.1:19100 {\n\t\theader_up x-pica-secret {env.PICA_SECRET_KEY}\n\t}\n}\n"+
		"http://127.0.0.1:19301 {\n\trespond 204\n}\n")
	node := exec.Command("node", append([]string{"bench/sdk-server.cjs"}, sdkPorts...)...)
	node.Env = append(os.Environ(), "PICA_SECRET_KEY="+secret, "NODE_PATH=testdata/node/node_modules")
	node.Stderr = os.Stderr
	check(node.Start())
	sdk := &process{name: "node sdk", cmd: node}
	children.Lock()
	children.list = append(children.list, sdk)
	children.Unlock()
	defer stopChildren()
	for _, port := range []int{19100, 19200, 19250, 19300, 19301, 19201, 19401} {
		waitPort(port)
	}
	key := connectionKey()

	var report []row
	want := func(name string) bool { return *only == "" || strings.Contains(name, *only) }
	token := func(port int) target {
		return target{method: "POST", url: fmt.Sprintf("http://127.0.0.1:%d/authkit/token", port), header: map[string]string{"X-User": "bench-user"}}
	}
	for _, p := range pages {
		name := fmt.Sprintf("token p50, %d page(s), 1 caller", p)
		if !want(name) {
			continue
		}
		a, b := token(19200+p), token(19400+p)
		warm(a)
		warm(b)
		report = append(report, compare(name, "Node SDK", "p50",
			func() result { return sequential(a, *samples) }, func() result { return sequential(b, *samples) }, plugin, sdk))
	}
	if want("token, 3 pages, 200 callers") {
		// 200 callers, 200 identities: no two requests can share Pica calls.
		a, b := token(19203), token(19403)
		a.header["X-User"], b.header["X-User"] = "user-%d", "user-%d"
		report = append(report, compare("token, 3 pages, 200 callers", "Node SDK", "cpu",
			func() result { return concurrent(a, 200, *duration) }, func() result { return concurrent(b, 200, *duration) }, plugin, sdk))
	}

	if want("passthrough") {
		pass := target{method: "GET", url: "http://127.0.0.1:19200/authkit/passthrough/users/me", header: map[string]string{"X-User": "bench-user", "X-Pica-Connection-Key": key}}
		base := target{method: "GET", url: "http://127.0.0.1:19300/v1/passthrough/users/me", header: map[string]string{"X-Pica-Connection-Key": key}}
		warm(pass)
		report = append(report, compare("passthrough, 64 callers", "bare reverse_proxy", "rps",
			func() result { return concurrent(pass, 64, *duration) }, func() result { return concurrent(base, 64, *duration) }, plugin, bare))

		quiet := pass
		quiet.url = strings.Replace(pass.url, ":19200/", ":19250/", 1)
		warm(quiet)
		report = append(report, compare("passthrough audit on, 64 callers", "audit off", "rps",
			func() result { return concurrent(pass, 64, *duration) }, func() result { return concurrent(quiet, 64, *duration) }, plugin, plugin))

		keyless := target{method: "GET", url: pass.url, header: map[string]string{"X-User": "bench-user", "X-AuthKit-Connection": "gmail"}}
		warm(keyless)
		report = append(report, compare("passthrough keyless (cached), 64 callers", "key header", "rps",
			func() result { return concurrent(keyless, 64, *duration) }, func() result { return concurrent(pass, 64, *duration) }, plugin, plugin))
	}

	if want("preflight") {
		pre := target{method: "OPTIONS", url: "http://127.0.0.1:19200/authkit/token", header: map[string]string{"Origin": "https://authkit.picaos.com", "Access-Control-Request-Method": "POST"}}
		resp := target{method: "OPTIONS", url: "http://127.0.0.1:19301/authkit/token", header: pre.header}
		report = append(report, compare("preflight, 64 callers", "respond 204", "rps",
			func() result { return concurrent(pre, 64, *duration) }, func() result { return concurrent(resp, 64, *duration) }, plugin, bare))
	}

	printReport(report, map[string]*process{"authkit": plugin, "node sdk": sdk, "bare caddy": bare, "sandbox": sandbox})
}

// build compiles cmd/caddy into dir.
func build(dir string) string {
	fmt.Println("building cmd/caddy ...")
	bin := filepath.Join(dir, "caddy")
	run(exec.Command("go", "build", "-o", bin, "./cmd/caddy"))
	return bin
}

// authkitSite is a Caddyfile site on port whose authkit handler uses the
// sandbox on api, with extra lines in its block.
func authkitSite(port, api int, extra string) string {
	if extra != "" {
		extra = "\t\t" + extra + "\n"
	}
	return fmt.Sprintf("http://127.0.0.1:%d {\n\tauthkit {\n\t\tsecret {env.PICA_SECRET_KEY}\n\t\tapi http://127.0.0.1:%d\n\t\tidentity {http.request.header.X-User}\n%s\t}\n}\n", port, api, extra)
}

type target struct {
	method, url string
	header      map[string]string
}

type result struct {
	latencies []time.Duration
	elapsed   time.Duration
	errors    int
	cpu       time.Duration
}

func (r result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.latencies...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1))]
}

func (r result) rps() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

func (r result) cpuPerRequest() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.cpu / time.Duration(len(r.latencies))
}

// compare runs a and b alternately, rounds times, and merges each side's runs.
func compare(name, baseline, focus string, a, b func() result, pa, pb *process) row {
	r := row{name: name, baseline: baseline, focus: focus}
	for i := 0; i < *rounds; i++ {
		ra, rb := measure(a, pa), measure(b, pb)
		r.ours, r.base = merge(r.ours, ra), merge(r.base, rb)
		r.ratios = append(r.ratios, ratioOf(focus, ra, rb))
	}
	return r
}

var profiling sync.Once

func measure(f func() result, p *process) result {
	if *profile != "" && p.name == "authkit" {
		profiling.Do(func() { go saveProfile(*profile, *duration) })
	}
	before := p.cpu()
	r := f()
	r.cpu = p.cpu() - before
	return r
}

func merge(a, b result) result {
	return result{append(a.latencies, b.latencies...), a.elapsed + b.elapsed, a.errors + b.errors, a.cpu + b.cpu}
}

var client = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512, DisableCompression: true},
	Timeout:   30 * time.Second,
}

func once(t target) (time.Duration, bool) {
	req, _ := http.NewRequest(t.method, t.url, nil)
	for k, v := range t.header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return time.Since(start), false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return time.Since(start), res.StatusCode < 300
}

func warm(t target) {
	for i := 0; i < 5; i++ {
		if _, ok := once(t); !ok {
			check(fmt.Errorf("warm-up of %s %s failed", t.method, t.url))
		}
	}
}

func sequential(t target, n int) result {
	var r result
	start := time.Now()
	for i := 0; i < n; i++ {
		d, ok := once(t)
		r.latencies = append(r.latencies, d)
		if !ok {
			r.errors++
		}
	}
	r.elapsed = time.Since(start)
	return r
}

func concurrent(t target, callers int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var r result
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			t := t.forCaller(c)
			var local []time.Duration
			errs := 0
			for ctx.Err() == nil {
				lat, ok := once(t)
				local = append(local, lat)
				if !ok {
					errs++
				}
			}
			mu.Lock()
			r.latencies = append(r.latencies, local...)
			r.errors += errs
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

// forCaller fills %d in header values with the caller's number, so each
// caller can have an identity of its own.
func (t target) forCaller(c int) target {
	header := make(map[string]string, len(t.header))
	for k, v := range t.header {
		if strings.Contains(v, "%d") {
			v = fmt.Sprintf(v, c)
		}
		header[k] = v
	}
	t.header = header
	return t
}

func connectionKey() string {
	req, _ := http.NewRequest("GET", "http://127.0.0.1:19100/v1/vault/connections?identity=bench-user", nil)
	req.Header.Set("x-pica-secret", secret)
	res, err := client.Do(req)
	check(err)
	defer res.Body.Close()
	var list struct {
		Rows []struct {
			Key string `json:"key"`
		} `json:"rows"`
	}
	check(json.NewDecoder(res.Body).Decode(&list))
	if len(list.Rows) == 0 {
		check(fmt.Errorf("the sandbox has no connection for bench-user"))
	}
	return list.Rows[0].Key
}

// saveProfile fetches a CPU profile of the authkit process from its admin API.
func saveProfile(file string, d time.Duration) {
	res, err := http.Get(fmt.Sprintf("http://localhost:19999/debug/pprof/profile?seconds=%d", int(d.Seconds())))
	check(err)
	defer res.Body.Close()
	f, err := os.Create(file)
	check(err)
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	check(err)
}

func waitPort(port int) {
	for i := 0; i < 300; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	check(fmt.Errorf("nothing listens on port %d", port))
}

func run(cmd *exec.Cmd) {
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	check(cmd.Run())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stopChildren()
		os.RemoveAll(tempDir)
		os.Exit(1)
	}
}
