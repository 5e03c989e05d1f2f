package caddyauthkit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Hot paths, measured with go test -bench . -benchmem -run ^$

func BenchmarkPreflight(b *testing.B) {
	p := newCORSPolicy([]string{"https://authkit.picaos.com"}, []string{"X-Custom"})
	r := httptest.NewRequest("OPTIONS", "/authkit/token", nil)
	r.Header.Set("Origin", "https://authkit.picaos.com")
	r.Header.Set("Access-Control-Request-Method", "POST")
	b.ReportAllocs()
	for b.Loop() {
		p.preflight(discard{http.Header{}}, r, tokenRoute)
	}
}

func BenchmarkResolveIdentity(b *testing.B) {
	a := &AuthKit{Identity: DefaultIdentity, IdentityType: DefaultIdentityType}
	r := httptest.NewRequest("POST", "/authkit/token", nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "alice@example.com")
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.resolveIdentity(r, tokenRoute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConfinePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := confinePath("gmail/v1/users/me%40example.com/messages"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOwnershipCacheHit(b *testing.B) {
	c := newCache[string](DefaultOwnershipCacheSize, time.Minute)
	a := &AuthKit{owners: c, logger: zap.NewNop()}
	id := identity{ID: "alice", Type: "user"}
	key := "test::gmail::default::106c889a50bc798e99b0ef4abb9d5e7b|alice"
	c.add(ownerCacheKey(id, ownsKey, key), key)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := a.checkOwnership(context.Background(), id, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTokenMerge(b *testing.B) {
	row := json.RawMessage(`{"id":1001,"connectionDefId":1,"type":"api","title":"Gmail","image":"https://assets.picaos.com/connectors/gmail.svg","activatedAt":1735689600000,"secretId":null,"clientSecretDisplay":null,"clientIdDisplay":null,"scopes":null,"environment":"test","guide":null,"createdAt":1735689600000,"tags":[],"active":true}`)
	var pages [][]byte
	for p := 1; p <= 3; p++ {
		rows := make([]json.RawMessage, 100)
		for i := range rows {
			rows[i] = row
		}
		body, _ := json.Marshal(map[string]any{"rows": rows, "total": 300, "pages": 3, "page": p, "requestId": p})
		pages = append(pages, body)
	}
	b.SetBytes(int64(len(pages[0]) * 3))
	b.ReportAllocs()
	for b.Loop() {
		var rows [][]byte
		var last authkitPage
		for _, body := range pages {
			p, err := parsePage(body)
			if err != nil {
				b.Fatal(err)
			}
			rows, last = append(rows, p.rows), p
		}
		whiteLabel := false
		_ = mergePages(rows, []byte(strconv.Itoa(300)), last.requestID, &whiteLabel)
	}
}

type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

// BenchmarkAuditLine: one passthrough's audit line, encoded and written to
// a file, as the audit logger does with a file output.
func BenchmarkAuditLine(b *testing.B) {
	f, _ := os.CreateTemp("", "audit")
	defer os.Remove(f.Name())
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(f), zap.InfoLevel)
	a := &AuthKit{logHash: newKeyedHash(deriveKey("s", purposeLogHash)), auditLog: zap.New(core), logger: zap.NewNop()}
	r := httptest.NewRequest("GET", "/authkit/passthrough/x", nil)
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	id := identity{ID: "alice", Type: "user"}
	b.ReportAllocs()
	for b.Loop() {
		rec := newAudit(passthroughRoute, id)
		rec.platform, rec.path, rec.status = "gmail", "/v1/passthrough/x", 200
		a.audit(r, rec, nil)
	}
}
