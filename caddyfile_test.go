package caddyauthkit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt checks testdata/caddyfile_adapt/*.caddyfiletest: a
// Caddyfile, ten dashes, then the JSON it adapts to, or the error it must
// fail with (files named error_*; the expected text may end with the
// ", at FILE:LINE" the error must point at).
func TestCaddyfileAdapt(t *testing.T) {
	// What {$ONE_SECRET_KEY} bakes in, for the files that show it refused.
	t.Setenv("ONE_SECRET_KEY", "sk_test_1_bakedIntoTheConfig")
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, ok := strings.Cut(string(data), "\n----------\n")
			if !ok {
				t.Fatal("no ten-dash separator")
			}
			if strings.HasPrefix(filepath.Base(file), "error_") {
				// The file's name lets errors say file:line, and lets the
				// parser read the line a {$VAR} was written on.
				_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": file})
				if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(expected)) {
					t.Fatalf("error %v, want one containing %q", err, strings.TrimSpace(expected))
				}
				return
			}
			if !caddytest.CompareAdapt(t, file, input, "caddyfile", strings.TrimRight(expected, "\n")) {
				t.Fatal("adapted JSON differs from the golden file")
			}
		})
	}
}

func TestUnmarshalCaddyfileAppendsListsAndReadsProxy(t *testing.T) {
	d := caddyfile.NewTestDispenser(`authkit {
		secret {env.PICA_SECRET_KEY}
		cors_origins https://a.example
		cors_origins https://b.example
		platforms gmail
		platforms slack
		proxy {
			transport http {
				response_header_timeout 30s
			}
		}
	}`)
	var a AuthKit
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if len(a.CORSOrigins) != 2 || len(a.Platforms) != 2 {
		t.Fatalf("lists not appended: %v %v", a.CORSOrigins, a.Platforms)
	}
	if !strings.Contains(string(a.ProxyRaw), `"response_header_timeout":30000000000`) {
		t.Fatalf("proxy block: %s", a.ProxyRaw)
	}
	for _, bad := range []string{
		"authkit extra {\n secret x\n}",
		"authkit {\n secret\n}",
		"authkit {\n secret x\n timeout soon\n}",
		"authkit {\n secret x\n max_concurrent 0\n}",
		"authkit {\n secret x\n proxy {\n }\n proxy {\n }\n}",
	} {
		var a AuthKit
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

// TestNumericOptionsTakeTheirWholeRange: each numeric option accepts the
// ends of its range and refuses what lies just outside: a duration must be
// positive, a count at least 1, a size from 1 byte to 1 TiB.
func TestNumericOptionsTakeTheirWholeRange(t *testing.T) {
	parse := func(option string) (AuthKit, error) {
		var a AuthKit
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("authkit {\n secret {env.X}\n " + option + "\n}"))
		return a, err
	}
	for option, check := range map[string]func(AuthKit) bool{
		"timeout 1ns":                 func(a AuthKit) bool { return a.Timeout == 1 },
		"ownership_ttl 1ns":           func(a AuthKit) bool { return a.OwnershipTTL == 1 },
		"max_concurrent 1":            func(a AuthKit) bool { return a.MaxConcurrent == 1 },
		"ownership_cache_size 1":      func(a AuthKit) bool { return a.OwnershipCacheSize == 1 },
		"max_body_size 1":             func(a AuthKit) bool { return a.MaxBodySize == 1 },
		"max_body_size 1TiB":          func(a AuthKit) bool { return a.MaxBodySize == 1<<40 },
		"max_body_size 1099511627776": func(a AuthKit) bool { return a.MaxBodySize == 1<<40 },
	} {
		if a, err := parse(option); err != nil || !check(a) {
			t.Errorf("%s: %v", option, err)
		}
	}
	for _, option := range []string{
		"timeout 0s", "timeout -1s", "ticket_ttl 0s", "max_concurrent 0", "ownership_cache_size -1",
		"max_body_size 0", "max_body_size 1099511627777",
	} {
		if _, err := parse(option); err == nil || !strings.Contains(err.Error(), "must be") {
			t.Errorf("%s: accepted (%v)", option, err)
		}
	}
}

func TestValidateRefusesUnsafeConfigs(t *testing.T) {
	for name, a := range map[string]AuthKit{
		"static identity":        {Identity: "alice", IdentityType: "user"},
		"bad identity type":      {Identity: "{http.auth.user.id}", IdentityType: "admin"},
		"trusted without header": {Identity: "{http.auth.user.id}", IdentityType: "user", IdentityTrustedProxiesOnly: true},
		"bad origin":             {Identity: "{http.auth.user.id}", IdentityType: "user", CORSOrigins: []string{"authkit.picaos.com"}},
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestExamplesAdaptAndValidate keeps every Caddyfile shown in the docs real:
// each adapts and provisions.
func TestExamplesAdaptAndValidate(t *testing.T) {
	t.Setenv("PICA_SECRET_KEY", testSecret)
	t.Setenv("ONE_SECRET_KEY", testSecret)
	files, _ := filepath.Glob("examples/*.Caddyfile")
	files = append(files, "Caddyfile.example")
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(data, map[string]any{"filename": file})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if strings.Contains(string(cfgJSON), testSecret) {
				t.Fatal("the secret was baked into the adapted config")
			}
			var cfg caddy.Config
			if err := caddy.StrictUnmarshalJSON(cfgJSON, &cfg); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&cfg); err != nil {
				t.Fatalf("validate: %v", err)
			}
		})
	}
}

// FuzzUnmarshalCaddyfile: no input makes the parser panic; a config it
// accepts has a secret, has a JSON equivalent (it survives a round trip
// through JSON as Caddy reads it, strictly), takes its defaults, and passes
// Validate, which applies the parser's checks to JSON configs (all but
// identity_trusted_proxies_only, which Provision checks against the
// identity). Seeds: testdata/fuzz/FuzzUnmarshalCaddyfile.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Fuzz(func(t *testing.T, input string) {
		var a AuthKit
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			return
		}
		if a.Secret == "" {
			t.Fatalf("accepted %q without a secret", input)
		}
		encoded, err := json.Marshal(a)
		var back AuthKit
		if err != nil || caddy.StrictUnmarshalJSON(encoded, &back) != nil || !reflect.DeepEqual(a, back) {
			t.Fatalf("accepted %q, whose JSON %s (%v) reads back as %+v", input, encoded, err, back)
		}
		if err := a.setDefaults(); err != nil {
			t.Fatalf("accepted %q: %v", input, err)
		}
		a.IdentityTrustedProxiesOnly = false
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted %q, which Validate refuses: %v", input, err)
		}
	})
}
