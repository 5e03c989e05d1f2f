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
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
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

// expected are the statuses each kind of request may answer.
var expected = map[string][]int{
	"ticket":                     {200},
	"token (3 pages merged)":     {200},
	"token page (widget paging)": {200},
	"passthrough key GET":        {200},
	"passthrough key POST JSON":  {200},
	"passthrough keyless":        {200},
	"connections":                {200},
	"connectors":                 {200},
	"preflight":                  {204},
	"third-party 401/500":        {401, 500},
	"denied":                     {401, 403},
	"delete connection":          {200},
	"vendor 503":                 {502},
	"vendor 429":                 {429},
	"vendor garbage":             {502},
	"vendor reset":               {502},
	"vendor timeout":             {504},
}

// kindOrder is the order of the report.
var kindOrder = []string{
	"ticket", "token (3 pages merged)", "token page (widget paging)", "passthrough key GET", "passthrough key POST JSON",
	"passthrough keyless", "connections", "connectors", "preflight", "third-party 401/500", "denied", "delete connection",
	"vendor 503", "vendor 429", "vendor garbage", "vendor reset", "vendor timeout",
}

// soakUser is a caller's connection in each sandbox it uses.
type soakUser struct {
	name    string
	key     string // its gmail connection in the main sandbox
	key429  string // its gmail connection in the sandbox that rate-limits passthrough
	foreign string // someone else's key
	deleter string // the identity that deletes connections in its stead
}

// soakOp is one operation of the mix: one to four requests.
type soakOp struct {
	name     string
	weight   int
	variants int // how many variants run picks from
	reqs     func(variant int) int
	run      func(c *caller, u *soakUser, variant int)
}

var soakOps = []soakOp{
	{name: "token", weight: 15, reqs: fixed(2), run: func(c *caller, u *soakUser, _ int) {
		c.token(soakAuthkitPort, "token (3 pages merged)", u)
	}},
	{name: "widget", weight: 2, reqs: fixed(4), run: func(c *caller, u *soakUser, _ int) {
		// The widget pages with one ticket: page/limit in the query.
		ticket := c.ticket(soakAuthkitPort, u)
		for page := 1; page <= 3; page++ {
			c.withTicket(soakAuthkitPort, "token page (widget paging)", ticket, fmt.Sprintf("?page=%d&limit=100", page), `"rows":[`)
		}
	}},
	{name: "passthrough key", weight: 23, reqs: fixed(1), run: func(c *caller, u *soakUser, _ int) {
		c.do("passthrough key GET", "GET", soakURL(soakAuthkitPort, "/passthrough/users/me"), map[string]string{"X-User": u.name, "X-Pica-Connection-Key": u.key}, "", nil)
	}},
	{name: "passthrough key POST", weight: 5, reqs: fixed(1), run: func(c *caller, u *soakUser, _ int) {
		body := fmt.Sprintf(`{"connectionKey":%q,"to":"someone@example.com","text":"hello from the soak"}`, u.key)
		c.do("passthrough key POST JSON", "POST", soakURL(soakAuthkitPort, "/passthrough/messages/send"),
			map[string]string{"X-User": u.name, "X-Pica-Connection-Key": u.key, "Content-Type": "application/json"}, body, nil)
	}},
	{name: "keyless", weight: 15, reqs: fixed(1), run: func(c *caller, u *soakUser, _ int) {
		c.do("passthrough keyless", "GET", soakURL(soakAuthkitPort, "/passthrough/users/me"), map[string]string{"X-User": u.name, "X-AuthKit-Connection": "gmail"}, "", nil)
	}},
	{name: "connections", weight: 10, reqs: fixed(1), run: func(c *caller, u *soakUser, _ int) {
		c.do("connections", "GET", soakURL(soakAuthkitPort, "/connections"), map[string]string{"X-User": u.name}, "", bodyHas(`"rows":[`))
	}},
	{name: "connectors", weight: 4, reqs: fixed(1), run: func(c *caller, u *soakUser, _ int) {
		c.do("connectors", "GET", soakURL(soakAuthkitPort, "/connectors"), map[string]string{"X-User": u.name}, "", bodyHas(`"rows":[`))
	}},
	{name: "preflight", weight: 5, reqs: fixed(1), run: func(c *caller, _ *soakUser, _ int) {
		c.do("preflight", "OPTIONS", soakURL(soakAuthkitPort, "/token"), map[string]string{"Origin": "https://authkit.picaos.com", "Access-Control-Request-Method": "POST"}, "",
			headerHas("Access-Control-Allow-Origin", "https://authkit.picaos.com"))
	}},
	{name: "third party", weight: 3, variants: 2, reqs: fixed(1), run: func(c *caller, u *soakUser, v int) {
		// A third party's own error passes through with its status; its 401
		// tells the app to reconnect.
		status, check := "500", (func(*http.Response, []byte) string)(nil)
		if v == 0 {
			status, check = "401", headerHas("AuthKit-Reconnect", "gmail")
		}
		c.do("third-party 401/500", "GET", soakURL(soakAuthkitPort, "/passthrough/status/"+status), map[string]string{"X-User": u.name, "X-AuthKit-Connection": "gmail"}, "", check)
	}},
	{name: "denied", weight: 4, variants: 3, reqs: fixed(1), run: func(c *caller, u *soakUser, v int) {
		switch v {
		case 0: // no ticket, no identity
			c.do("denied", "POST", soakURL(soakAuthkitPort, "/token"), nil, "", nil)
		case 1: // a ticket that was never minted
			c.do("denied", "POST", soakURL(soakAuthkitPort, "/token"), map[string]string{"X-AuthKit-Ticket": "v1.bm90LWEtdGlja2V0LWF0LWFsbC0wMDAwMDAwMDAwMDAwMDAwMDAwMDA"}, "", nil)
		default: // someone else's connection key
			c.do("denied", "GET", soakURL(soakAuthkitPort, "/passthrough/users/me"), map[string]string{"X-User": u.name, "X-Pica-Connection-Key": u.foreign}, "", nil)
		}
	}},
	{name: "delete", weight: 2, reqs: fixed(1), run: func(c *caller, u *soakUser, _ int) {
		// A connection made for the occasion in the sandbox (not counted),
		// deleted through the gateway. Deleting forgets every cached answer
		// about the caller, so deleters are identities of their own: else
		// the deletes would empty the other callers' caches now and then,
		// and hide what the caches hold in traffic without deletes.
		conn, err := addConnection(soakSandboxPort, u.deleter, "notion")
		if err != nil {
			c.problem("delete connection", "setting up: "+err.Error())
			return
		}
		c.do("delete connection", "DELETE", soakURL(soakAuthkitPort, "/connections/"+conn.ID), map[string]string{"X-User": u.deleter}, "", bodyHas(`"deleted":true`))
	}},
	{name: "vendor 503", weight: 4, variants: 3, reqs: twoForTheFirst, run: func(c *caller, u *soakUser, v int) {
		port := soakAuthkitPort + 1
		switch v {
		case 0:
			c.token(port, "vendor 503", u)
		case 1:
			c.do("vendor 503", "GET", soakURL(port, "/connections"), map[string]string{"X-User": u.name}, "", nil)
		default:
			c.do("vendor 503", "GET", soakURL(port, "/passthrough/users/me"), map[string]string{"X-User": u.name, "X-Pica-Connection-Key": u.key}, "", nil)
		}
	}},
	{name: "vendor 429", weight: 3, reqs: fixed(1), run: func(c *caller, u *soakUser, _ int) {
		c.do("vendor 429", "GET", soakURL(soakAuthkitPort+2, "/passthrough/users/me"), map[string]string{"X-User": u.name, "X-Pica-Connection-Key": u.key429}, "", headerHas("Retry-After", ""))
	}},
	{name: "vendor garbage", weight: 2, reqs: fixed(2), run: func(c *caller, u *soakUser, _ int) {
		c.token(soakAuthkitPort+3, "vendor garbage", u)
	}},
	{name: "vendor reset", weight: 2, reqs: fixed(1), run: func(c *caller, u *soakUser, _ int) {
		c.do("vendor reset", "GET", soakURL(soakAuthkitPort+4, "/connections"), map[string]string{"X-User": u.name}, "", nil)
	}},
	{name: "vendor timeout", weight: 1, variants: 2, reqs: twoForTheFirst, run: func(c *caller, u *soakUser, v int) {
		port := soakAuthkitPort + 5
		if v == 0 {
			c.token(port, "vendor timeout", u)
			return
		}
		c.do("vendor timeout", "GET", soakURL(port, "/passthrough/users/me"), map[string]string{"X-User": u.name, "X-Pica-Connection-Key": u.key}, "", nil)
	}},
}

func fixed(n int) func(int) int { return func(int) int { return n } }

// twoForTheFirst: variant 0 (ticket and token) makes two requests, the others one.
func twoForTheFirst(variant int) int {
	if variant == 0 {
		return 2
	}
	return 1
}

func soakURL(port int, route string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/authkit%s", port, route)
}

// soakClient is the soak's callers; its idle connections are closed before
// each checkpoint, so the server holds none of them.
var soakClient = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
	Timeout:   30 * time.Second,
}

// caller is one worker of a round, with its own counts.
type caller struct {
	stats map[string]*kindStats
}

type kindStats struct {
	requests int
	statuses map[int]int
	problems map[string]int // what went wrong, and how often
}

func (c *caller) kind(name string) *kindStats {
	s := c.stats[name]
	if s == nil {
		s = &kindStats{statuses: map[int]int{}, problems: map[string]int{}}
		c.stats[name] = s
	}
	return s
}

// problem counts a request of kind that could not be made or answered
// wrongly.
func (c *caller) problem(kind, what string) {
	s := c.kind(kind)
	s.requests++
	s.problems[what]++
}

// do sends one request of kind and checks its answer: a status expected of
// the kind, and what check asks of a 2xx (or of any answer, for kinds whose
// expected statuses are errors).
func (c *caller) do(kind, method, target string, header map[string]string, body string, check func(*http.Response, []byte) string) (int, []byte) {
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, reader)
	if err != nil {
		c.problem(kind, err.Error())
		return 0, nil
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := soakClient.Do(req)
	if err != nil {
		c.problem(kind, "transport: "+strings.TrimPrefix(err.Error(), method+" "+strconv.Quote(target)+": "))
		return 0, nil
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	s := c.kind(kind)
	s.requests++
	s.statuses[res.StatusCode]++
	switch {
	case err != nil:
		s.problems[fmt.Sprintf("%d with a broken body: %v", res.StatusCode, err)]++
	case !contains(expected[kind], res.StatusCode):
		s.problems[fmt.Sprintf("unexpected %d: %.160s", res.StatusCode, data)]++
	case check != nil:
		if what := check(res, data); what != "" {
			s.problems[fmt.Sprintf("%d %s", res.StatusCode, what)]++
		}
	}
	return res.StatusCode, data
}

// ticket mints a ticket for u on the authkit site at port ("" on failure).
func (c *caller) ticket(port int, u *soakUser) string {
	var ticket struct {
		Ticket string `json:"ticket"`
	}
	status, body := c.do("ticket", "POST", soakURL(port, "/ticket"), map[string]string{"X-User": u.name}, "", func(_ *http.Response, body []byte) string {
		if json.Unmarshal(body, &ticket) != nil || ticket.Ticket == "" {
			return "without a ticket"
		}
		return ""
	})
	if status != http.StatusOK || body == nil {
		return ""
	}
	return ticket.Ticket
}

// token gets a ticket for u, then the token with it, as the widget does.
func (c *caller) token(port int, kind string, u *soakUser) {
	c.withTicket(port, kind, c.ticket(port, u), "", `"total":300,`)
}

// withTicket asks the token route with ticket, and wants want in a 2xx body.
func (c *caller) withTicket(port int, kind, ticket, query, want string) {
	if ticket == "" {
		c.problem(kind, "not sent: no ticket")
		return
	}
	c.do(kind, "POST", soakURL(port, "/token"+query), map[string]string{"X-AuthKit-Ticket": ticket, "Content-Type": "application/json"}, "{}", bodyHas(want))
}

func bodyHas(s string) func(*http.Response, []byte) string {
	return func(res *http.Response, body []byte) string {
		if res.StatusCode < 300 && !bytes.Contains(body, []byte(s)) {
			return fmt.Sprintf("without %s in %d bytes", s, len(body))
		}
		return ""
	}
}

// headerHas wants header name with value (any value when value is "").
func headerHas(name, value string) func(*http.Response, []byte) string {
	return func(res *http.Response, _ []byte) string {
		got := res.Header.Get(name)
		if got == "" || (value != "" && got != value) {
			return fmt.Sprintf("with %s %q", name, got)
		}
		return ""
	}
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
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

// rss is the process's resident set now, in MiB.
func (p *process) rss() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	check(err)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	return 0
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
