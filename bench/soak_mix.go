package main

// The soak's mix: each kind of request, what it sends and what it may
// answer.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

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
